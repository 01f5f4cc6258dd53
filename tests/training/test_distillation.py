import os
import signal
import subprocess
import sys
import time
from concurrent import futures

from tests.conftest import REPO, run_module


def distill_args(run, source, output):
    return [f"--teacher_run={run.run_dir}", "--checkpoint=latest", f"--source={source}",
            f"--output={output}", "--chunk_size=20", "--beam_size=2", "--batch_size=8"]


def test_killed_distillation_resumes_to_the_same_file(tmp_path, trained_run, reverse_task):
    source = tmp_path / "src.txt"
    lines = open(reverse_task["train.src"], encoding="utf-8").read().splitlines()[:200]
    source.write_text("\n".join(lines) + "\n")
    full = tmp_path / "full.txt"
    with futures.ThreadPoolExecutor(1) as pool:  # the uninterrupted job beside the killed one
        full_job = pool.submit(run_module, "tfnmt.distill",
                               *distill_args(trained_run, source, full))
        out = tmp_path / "killed.txt"
        partial = tmp_path / "killed.txt.partial"
        proc = subprocess.Popen([sys.executable, "-m", "tfnmt.distill",
                                 *distill_args(trained_run, source, out)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and not (partial.exists() and
                                              partial.read_bytes().count(b"\n") >= 40):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        result = full_job.result()
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(full.read_text().splitlines()) == 200
    assert not out.exists(), "the job finished before it was killed"
    with open(partial, "a", encoding="utf-8") as f:
        f.write("a torn half line")  # as if killed in the middle of a write
    resumed = run_module("tfnmt.distill", *distill_args(trained_run, source, out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming at line" in resumed.stderr
    assert out.read_text() == full.read_text()
    assert not partial.exists() and not os.path.exists(f"{partial}.json")
    # The same job again returns at once; another job does not replace the file.
    again, other = run_module("tfnmt.distill", *distill_args(trained_run, source, out)), \
        run_module("tfnmt.distill", *distill_args(trained_run, source, out), "--beam_size=1")
    assert again.returncode == 0 and "already distilled by this job" in again.stderr
    assert other.returncode == 1 and "was distilled by another job" in other.stderr
    assert out.read_text() == full.read_text()


def test_a_partial_file_of_another_job_is_refused(tmp_path, trained_run, reverse_task):
    out = tmp_path / "d.txt"
    (tmp_path / "d.txt.partial").write_text("x\n")
    (tmp_path / "d.txt.partial.json").write_text('{"teacher": "someone else"}')
    result = run_module("tfnmt.distill", *distill_args(trained_run, reverse_task["test.src"], out))
    assert result.returncode == 1 and "belongs to another distillation job" in result.stderr
