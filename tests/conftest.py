"""Shared fixtures. Two logical CPU devices are configured before TensorFlow starts, so
MirroredStrategy tests can run two replicas on one CPU."""

import os
import random
import sys
import threading

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA's LLVM back end at -O0: the tests' programs are tiny, so compiling is most of their time
# (a beam-search test 35 -> 26 s); what they check (same tokens, XLA == graph, export ==
# in-process) does not depend on how hard LLVM optimises. Commands started by tests inherit it.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

from tfnmt import methods, runs  # noqa: E402
from tfnmt.core.config import DataConfig, ModelConfig  # noqa: E402
from tfnmt.data.vocabulary import train_vocab  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MULTI30K = os.path.join(REPO, "..", "shared", "data", "multi30k")


@pytest.fixture(scope="session")
def two_replicas():
    """One MirroredStrategy over the two logical CPUs for the whole session: two strategies in
    one process reuse collective instance keys, and the runtime then mixes up their shapes."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def multi30k(split, lang):
    path = os.path.join(MULTI30K, f"{split}.{lang}")
    if not os.path.isfile(path):
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def multi30k_sample(tmp_path_factory):
    """The first 2,000 Multi30k En-De training pairs and a 300-piece joint vocabulary."""
    from tfnmt.data.vocabulary import train_vocab

    out = tmp_path_factory.mktemp("multi30k")
    paths = {}
    for lang in ("en", "de"):
        with open(multi30k("train", lang), encoding="utf-8") as f:
            lines = [next(f) for _ in range(2000)]
        paths[lang] = str(out / f"sample.{lang}")
        with open(paths[lang], "w", encoding="utf-8") as f:
            f.writelines(lines)
    paths["vocab"] = train_vocab([paths["en"], paths["de"]], str(out / "spm"), vocab_size=300)
    return paths


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(0)
    np.random.seed(0)
    yield


from tests.fixtures.reverse_task import write_reverse_task  # noqa: E402


@pytest.fixture(scope="session")
def reverse_task(tmp_path_factory):
    """A synthetic task: the target is the source's letters in reverse order."""
    out = tmp_path_factory.mktemp("reverse")
    paths = write_reverse_task(out)
    paths["vocab"] = train_vocab([paths["train.src"]], str(out / "spm"), vocab_size=24)
    return paths


def make_run(run_dir, task, model=None, batch_tokens=256, **train):
    model = model or ModelConfig.from_shape("tiny", dropout=0.0)
    from tfnmt.data.tokenizer import load_tokenizer

    model.vocab_size = load_tokenizer(task["vocab"]).vocab_size
    data = DataConfig(train_source=task["train.src"], train_target=task["train.tgt"],
                      source_vocab=task["vocab"], target_vocab=task["vocab"], batch_tokens=batch_tokens,
                      max_length=16, shuffle_buffer=1000)
    defaults = dict(train_steps=20, warmup_steps=10, xla=False, log_every=1000,
                    save_every=1000, eval_every=1000, learning_rate=3e-3)
    defaults.update(train)
    return runs.create_or_check(str(run_dir), model, data, methods.train_config(model, **defaults))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, reverse_task):
    """A tiny model trained briefly on the reverse task, with checkpoints at steps 30 and 60."""
    import tensorflow as tf

    from tfnmt.training.trainer import Trainer

    run = make_run(tmp_path_factory.mktemp("runs") / "tiny", reverse_task, train_steps=60,
                   save_every=30, learning_rate=5e-3)
    Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train()
    return run


class _CommandServer:
    """The client of tests/command_server.py: one server per test process, started on first
    use; requests from several threads (run_modules) run side by side."""

    def __init__(self):
        import json
        import subprocess
        import threading

        self.process = subprocess.Popen([sys.executable, "-m", "tests.command_server"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
        if json.loads(self.process.stdout.readline() or "{}").get("ready") is not True:
            raise RuntimeError("tests/command_server.py did not start")
        self.messages, self.next_id, self.dead = {}, 0, False
        self.changed, self.writing = threading.Condition(), threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        import json

        for line in self.process.stdout:
            message = json.loads(line)
            with self.changed:
                self.messages.setdefault(message["id"], {}).update(message)
                self.changed.notify_all()
        with self.changed:  # the server died: waiting commands fail at once, not at a timeout
            self.dead = True
            self.changed.notify_all()

    def run(self, module, args, env, cwd, input_text, timeout):
        import json
        import signal
        import subprocess
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            paths = {name: os.path.join(folder, name) for name in ("stdin", "stdout", "stderr")}
            with open(paths["stdin"], "wb") as f:
                f.write(_as_bytes(input_text))
            for name in ("stdout", "stderr"):
                open(paths[name], "w").close()
            with self.writing:
                self.next_id += 1
                number = self.next_id
                request = dict(paths, id=number, module=module, args=list(args), env=env,
                               cwd=str(cwd))
                self.process.stdin.write((json.dumps(request) + "\n").encode())
                self.process.stdin.flush()
            with self.changed:
                ended = self.changed.wait_for(
                    lambda: self.dead or "returncode" in self.messages.get(number, {}), timeout)
                message = self.messages.pop(number, {})
            if ended and "returncode" not in message:
                raise RuntimeError("tests/command_server.py died while running "
                                   f"{module} {' '.join(args)}")
            if not ended:
                if "pid" in message:
                    os.kill(message["pid"], signal.SIGKILL)
                raise subprocess.TimeoutExpired([module, *args], timeout)
            out, err = (open(paths[n], encoding="utf-8", errors="replace").read()
                        for n in ("stdout", "stderr"))
        return subprocess.CompletedProcess([sys.executable, "-m", module, *args],
                                           message["returncode"], out, err)


_SERVER, _SERVER_LOCK = [], threading.Lock()


def _as_bytes(text):
    return text if isinstance(text, bytes) else (text or "").encode()


def run_module(module, *args, env=None, timeout=600, cwd=None, input_text=None, fresh=False):
    """Runs `python -m module args` and returns the CompletedProcess, its output as text (bytes
    that are not UTF-8 replaced). input_text (str or bytes) is its standard input. The command
    runs in a child forked from tests/command_server.py (TensorFlow already imported), unless
    fresh=True: then in a new interpreter, as when its start-up itself is under test."""
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    if not fresh:
        with _SERVER_LOCK:
            if not _SERVER:
                _SERVER.append(_CommandServer())
        return _SERVER[0].run(module, args, full_env, cwd or REPO, input_text, timeout)
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                            env=full_env, timeout=timeout, cwd=cwd or REPO,
                            input=None if input_text is None else _as_bytes(input_text),
                            stdin=None if input_text is not None else subprocess.DEVNULL)
    result.stdout, result.stderr = (result.stdout.decode(errors="replace"),
                                    result.stderr.decode(errors="replace"))
    return result


def run_modules(*commands, **kwargs):
    """run_module(*command, **kwargs) for every (module, *args) command, the processes side by
    side: each spends seconds importing TensorFlow on one CPU, so two take about as long as one."""
    from concurrent import futures

    with futures.ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda command: run_module(*command, **kwargs), commands))


def _memory_mappings():
    try:
        with open("/proc/self/maps") as maps, open("/proc/sys/vm/max_map_count") as limit:
            return sum(1 for _ in maps), int(limit.read())
    except OSError:
        return None


def pytest_sessionfinish(session):
    """An xdist worker hands its memory-mapping count to the controller (see below)."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["memory_mappings"] = _memory_mappings()


def pytest_configure(config):
    config.memory_mappings = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    counts = getattr(node, "workeroutput", {}).get("memory_mappings")
    if counts:
        node.config.memory_mappings.append(counts)


def pytest_terminal_summary(terminalreporter, config):
    """How close a test process came to Linux's vm.max_map_count: TensorFlow never frees a
    compiled XLA program (each keeps ~300 memory mappings), and past the limit the process dies
    with a segmentation fault inside LLVM."""
    counts = config.memory_mappings or [c for c in [_memory_mappings()] if c]
    if counts:
        used, allowed = max(counts)
        terminalreporter.write_line(
            f"memory mappings at the end: {used} of vm.max_map_count {allowed} "
            f"(the fullest of {len(counts)} test process(es))")
