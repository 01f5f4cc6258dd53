"""The training entry point as users run it: subprocesses, signals, several workers."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, run_module, run_modules


def train_args(task, run_dir, *extra):
    return ["--train_source", task["train.src"], "--train_target", task["train.tgt"],
            "--vocab", task["vocab"], "--run_dir", str(run_dir), "--shape=tiny", "--dropout=0.1",
            "--batch_tokens=256", "--max_length=16", "--shuffle_buffer=500", "--warmup_steps=5",
            "--noxla", "--log_every=1000", "--eval_every=1000", *extra]


def assert_one_clear_error(result, message):
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert re.search(message, result.stderr), result.stderr[-2000:]


BAD_FLAGS = [
    (["--train_steps=-3"], r"error: --train_steps must be positive"),
    (["--shape=enormous"], r"shape"),
    (["--batch_tokens=4", "--max_length=16"], r"error: batch_tokens 4 cannot hold one sequence"),
    (["--num_heads=3"], r"error: d_model 32 is not divisible by num_heads 3"),
    # Impossible settings.
    (["--max_length=0"], r"error: --max_length must be at least 2"),
    (["--distribution=mirrored", "--devices=GPU:7"], r"error: device GPU:7 is not on this "),
    (["--xla", "--xla_elementwise"], r"error: --xla_elementwise is for training without --xla"),
    (["--keep_checkpoints=0"], r"error: --keep_checkpoints must be positive"),
    (["--num_heads=0"], r"error: num_heads must be at least 1, got 0"),
]


def test_bad_flags_exit_1_with_one_error(tmp_path, reverse_task):
    results = run_modules(*[("tfnmt.train", *train_args(reverse_task, tmp_path / f"r{i}"), *extra)
                            for i, (extra, _) in enumerate(BAD_FLAGS)])
    for (_, message), result in zip(BAD_FLAGS, results):
        assert_one_clear_error(result, message)


def test_bad_corpora_exit_1_with_one_error(tmp_path, reverse_task):
    short = tmp_path / "short.tgt"
    short.write_text("a b\n")
    task = dict(reverse_task, **{"train.tgt": str(short)})
    missing = dict(reverse_task, **{"train.src": str(tmp_path / "nope.src")})
    results = run_modules(("tfnmt.train", *train_args(task, tmp_path / "r")),
                          ("tfnmt.train", *train_args(missing, tmp_path / "r")))
    assert_one_clear_error(results[0], r"error: .*train.src has 2800 lines but .*short.tgt has 1")
    assert_one_clear_error(results[1], r"error: corpus file .*nope.src does not exist")


def final_weights(run_dir, step):
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints", f"ckpt-{step}"))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith(("weights/", "optimizer/"))]
    return {n: reader.get_tensor(n) for n in names}


def test_sigkill_or_a_shorter_train_steps_then_resume_equals_uninterrupted(tmp_path,
                                                                          reverse_task):
    """A run killed, or trained to a shorter --train_steps first (the frontier chain stops its
    long NAT runs at step 3,000 for the ablations), resumes to the same weights."""
    steps = "--train_steps=60"
    with futures.ThreadPoolExecutor(1) as pool:  # the uninterrupted run beside the killed one
        full_job = pool.submit(run_module, "tfnmt.train", *train_args(
            reverse_task, tmp_path / "full", steps, "--save_every=10"))
        killed_dir = tmp_path / "killed"
        proc = subprocess.Popen([sys.executable, "-m", "tfnmt.train",
                                 *train_args(reverse_task, killed_dir, steps, "--save_every=10")],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and not tf.train.latest_checkpoint(
                str(killed_dir / "checkpoints")):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        full = full_job.result()
    assert full.returncode == 0, full.stderr[-2000:]
    latest = tf.train.latest_checkpoint(str(killed_dir / "checkpoints"))
    assert latest and int(latest.rsplit("-", 1)[1]) < 60, "the run finished before it was killed"

    resumed = run_module("tfnmt.train", *train_args(reverse_task, killed_dir, steps,
                                                    "--save_every=10"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from step" in resumed.stdout
    a, b = final_weights(tmp_path / "full", 60), final_weights(killed_dir, 60)
    assert a.keys() == b.keys() and len(a) > 100
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-6, err_msg=name)
    # Progress: the total, the time left, each checkpoint saved.
    assert re.search(r"step 60/60 \| .* tok/s \| .* left at most", full.stdout)
    assert re.search(r"step 10 \| saved .*ckpt-10", full.stdout)
    fingerprint = re.compile(r"weights fingerprint (\w+)")
    assert fingerprint.search(full.stdout).group(1) == fingerprint.search(resumed.stdout).group(1)
    stopped_dir = tmp_path / "stopped"
    for total in ("--train_steps=30", steps):
        result = run_module("tfnmt.train", *train_args(reverse_task, stopped_dir, total,
                                                        "--save_every=10"))
        assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed from step 30" in result.stdout
    c = final_weights(stopped_dir, 60)
    for name in a:
        np.testing.assert_allclose(c[name], a[name], rtol=0, atol=1e-6, err_msg=name)


def test_xla_elementwise_compiles_clusters_and_trains_alike(tmp_path, reverse_task):
    """The clusters XLA compiles are dumped (XLA_FLAGS): with --xla_elementwise there are some,
    without none; the weights after 20 steps agree to float32 rounding."""
    steps = ("--train_steps=20", "--save_every=20")  # dropout 0.1: the same masks both ways
    with futures.ThreadPoolExecutor(2) as pool:  # one TensorFlow start each: run side by side
        plain, fused = pool.map(lambda name, extra: run_module(
            "tfnmt.train", *train_args(reverse_task, tmp_path / name, *steps, *extra),
            env={"XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={tmp_path / name}_dump"},
            fresh=True),
            ("plain", "fused"), ((), ("--xla_elementwise",)))
    assert plain.returncode == 0 and fused.returncode == 0, (plain.stderr + fused.stderr)[-3000:]
    assert any(name.endswith(".txt") for name in os.listdir(tmp_path / "fused_dump"))
    assert not os.path.exists(tmp_path / "plain_dump")
    a, b = final_weights(tmp_path / "plain", 20), final_weights(tmp_path / "fused", 20)
    assert a.keys() == b.keys() and len(a) > 100
    # The same arithmetic, fused: rounding apart, which Adam turns into differences below one
    # step's size (the learning rate, 1e-3) where a gradient is near zero.
    for name in (n for n in a if n.startswith("weights/")):  # the optimizer's copies repeat them
        x, y = b[name], a[name]
        # The keys' bias (qkv's middle third, kv's first half) gets no gradient in exact
        # arithmetic (softmax ignores a shift), so Adam steps on rounding noise there: up to
        # 20 x 1e-3 (seen on an AVX2 EPYC).
        for part, keys in (("qkv..bias", (1, 3)), ("kv..bias", (0, 2))):
            if part in name:
                size = x.shape[-1] // keys[1]
                cut = np.s_[keys[0] * size:(keys[0] + 1) * size]
                x, y = (np.delete(v, cut, axis=-1) for v in (x, y))
                break
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-3, err_msg=name)
    assert max(np.abs(b[n] - a[n]).max() for n in a) > 0  # the two really ran differently


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_and_exits_with_its_code(tmp_path, reverse_task, sig):
    run_dir = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, "-m", "tfnmt.train",
                             *train_args(reverse_task, run_dir, "--train_steps=100000",
                                         "--save_every=100000", "--log_every=1")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(300, proc.kill)  # a run that never reaches its loop fails
    watchdog.start()
    try:
        started = []
        for line in proc.stdout:  # --log_every=1: a "step" line once the loop runs
            started.append(line)
            if line.startswith("step "):
                break
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        watchdog.cancel()
    out = "".join(started) + out
    assert proc.returncode == 128 + sig, err[-2000:]  # not 0: the run did not finish
    assert "Traceback" not in err and f"stopped by {sig.name}" in out
    step = int(re.search(r"stopped at step (\d+)", out).group(1))
    assert step > 0
    # Off the save_every schedule: kept apart until the next scheduled save.
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints" / "resume")).endswith(
        f"ckpt-{step}")
    # training.json records what a resume starts from: the saved step.
    assert json.loads((run_dir / "training.json").read_text())[-1]["to_step"] == step


def test_a_failed_start_leaves_no_run_and_no_pipeline_hangs(tmp_path, reverse_task):
    run_dir = tmp_path / "r"
    # Every pair has at least two letters and EOS: --max_length=2 filters them all out.
    result = run_module("tfnmt.train", *train_args(reverse_task, run_dir, "--max_length=2",
                                                   "--train_steps=2"), timeout=300)
    assert_one_clear_error(result, r"error: no training pair of .* fits max_length 2")
    assert not run_dir.exists()  # not even the directory or its lock file
    fixed = run_module("tfnmt.train", *train_args(reverse_task, run_dir, "--train_steps=2"))
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert (run_dir / "config.json").exists()


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_training_ends_with_identical_weights(tmp_path, reverse_task):
    """Two local worker processes under MultiWorkerMirroredStrategy (TF_CONFIG on 127.0.0.1),
    in a private network namespace when `unshare -n` is available (gRPC binds every interface)."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    commands = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        args = train_args(reverse_task, tmp_path / "mw", "--distribution=multi_worker",
                          "--train_steps=8", "--save_every=4")
        commands.append(f"TF_CONFIG='{tf_config}' {sys.executable} -m tfnmt.train "
                        + " ".join(f"'{a}'" for a in args) + f" > {tmp_path}/w{index}.out 2>&1")
    script = " & ".join(commands) + " & wait"
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        script = f"ip link set lo up 2>/dev/null || true; {script}"
        argv = ["unshare", "-n", "bash", "-c", script]
    else:
        argv = ["bash", "-c", script]
    subprocess.run(argv, cwd=REPO, timeout=600, check=False)
    outputs = [(tmp_path / f"w{i}.out").read_text() for i in range(2)]
    prints = [re.search(r"finished at step (\d+); weights fingerprint (\w+)", o) for o in outputs]
    assert all(prints), "\n----\n".join(o[-1500:] for o in outputs)
    assert [p.group(1) for p in prints] == ["8", "8"]
    assert "on 2 replica(s)" in outputs[0]
    assert prints[0].group(2) == prints[1].group(2)
    # The chief's checkpoint holds the same step; the other worker left no checkpoint behind.
    assert tf.train.latest_checkpoint(str(tmp_path / "mw" / "checkpoints")).endswith("ckpt-8")
