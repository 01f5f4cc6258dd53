"""Bad input to the commands other than train: one line `error: ...`, exit 1, no traceback, and
nothing written (test_cli.py and training/test_train_cli.py have the earlier cases)."""

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from tfnmt.core.errors import UserError
from tfnmt.serving.client import translate

from tests.conftest import run_modules

FROZEN = os.path.join(os.path.dirname(__file__), "fixtures", "frozen_runs")


def assert_one_error(result, said):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert lines and lines[-1].startswith("error: ") and said in lines[-1], lines[-3:]


def test_bad_paths_and_values_each_give_one_error(tmp_path, trained_run, reverse_task):
    run, src, tgt = trained_run.run_dir, reverse_task["test.src"], reverse_task["test.tgt"]
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    (results_dir / "notes.json").write_text(json.dumps([1, 2]))
    rows_dir = tmp_path / "rows_results" / "frontier_rows"  # a frontier row file of another kind
    rows_dir.mkdir(parents=True)
    (rows_dir / "x.json").write_text(json.dumps({"kind": "evaluation", "values": {}}))
    copy = tmp_path / "copy.src"
    shutil.copyfile(src, copy)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    hybrid = os.path.join(FROZEN, "hybrid")
    a_file = tmp_path / "a_file"  # where a command would need a folder
    a_file.write_text("kept\n")
    cases = [
        (("tfnmt.distill", f"--teacher_run={run}", f"--source={src}", f"--output={tmp_path}"),
         "is a directory"),
        (("tfnmt.translate", f"--run_dir={run}", f"--input={copy}", f"--output={copy}"),
         "is also an input"),
        (("tfnmt.evaluate", f"--hypothesis={tgt}", f"--reference={tgt}",
          f"--result={results_dir}"), "is a directory"),
        (("tfnmt.report", f"--results={tmp_path / 'nothing'}",
          f"--output={tmp_path / 'r.md'}"), "is not a directory of result files"),
        (("tfnmt.report", f"--results={results_dir}", f"--output={tmp_path / 'r.md'}"),
         "is not a tfnmt result file"),
        (("tfnmt.report", f"--results={rows_dir.parent}", f"--output={tmp_path / 'r.md'}"),
         "holds a result of kind evaluation, not benchmark rows"),
        (("tfnmt.benchmark", f"--runs=a={run}", f"--source={src}", "--repeats=0"),
         "--repeats and --rounds must be at least 1"),
        (("tfnmt.benchmark", f"--runs=a={run}", f"--source={src}", "--rounds=0"),
         "got 1, 0 and 0."),
        (("tfnmt.benchmark", f"--runs=a={run}", f"--source={src}", "--length_halfwidths="),
         "need at least one value each"),
        (("tfnmt.benchmark", f"--runs=a={run}", f"--source={src}", "--batch_threads=1"),
         "--batch_threads takes batch:threads pairs"),
        (("tfnmt.benchmark", f"--runs=a={run}", f"--source={src}", "--nat_selection=b=total"),
         "--nat_selection takes normalized or total, or name=normalized|total pairs naming "
         "--runs (a); got b=total."),
        (("tfnmt.benchmark", "--mode=breakdown", f"--runs=a={run}", "--breakdown_batch=0"),
         "--breakdown_batch must be at least 1"),
        (("tfnmt.benchmark", "--mode=ctranslate2", "--tfnmt_configs=float16_xla",
          f"--output={tmp_path / 'side'}"), "--tfnmt_configs takes some of"),
        (("tfnmt.translate", f"--run_dir={run}", f"--input={src}",
          f"--checkpoint={os.path.join(hybrid, 'checkpoints', 'ckpt-200')}"), "another run's"),
        (("tfnmt.translate", f"--run_dir={hybrid}", f"--input={src}", "--method=hrt"),
         "hrt decoding needs a Transformer"),
        (("tfnmt.translate", f"--run_dir={run}", f"--input={src}", "--collapse_repeats"),
         "--collapse_repeats is for nat decoding, not autoregressive."),
        (("tfnmt.translate", f"--run_dir={broken}", f"--input={src}"),
         "cannot be read as a run configuration"),
        (("tfnmt.analyze", "--mode=hint_scales", f"--teacher_run={hybrid}", f"--source={src}",
          f"--target={tgt}"), "hints come from an autoregressive Transformer teacher"),
        (("tfnmt.analyze", "--mode=hrt_stages", f"--runs={run}@latest",
          f"--teacher_run={run}@latest", f"--source={src}", f"--target={tgt}"),
         "was trained with --objective=mle, not hrt"),
        (("tfnmt.export", f"--run_dir={run}", f"--export_base={tmp_path / 'ct2'}",
          "--format=ctranslate2", "--precision=int8", "--beam_size=2"),
         "drop --beam_size, --precision; --quantization"),
        (("tfnmt.saved_model_cli", "show", "--dir", str(tmp_path / "none"), "--all"),
         "holds no SavedModel"),
        (("tfnmt.pack_run", f"--run_dir={run}", f"--output={tmp_path / 'packed'}",
          "--checkpoints=best,last"), "--checkpoints takes averaged and/or best"),
        (("tfnmt.pack_run", f"--run_dir={run}", f"--output={tmp_path / 'packed'}",
          "--checkpoints=best"), "has no best checkpoint to pack"),
        (("tfnmt.pack_run", f"--run_dir={run}", f"--output={a_file / 'packed'}"),
         f"cannot be written ({a_file} is not a writable directory)"),
        (("tfnmt.export", f"--run_dir={run}", f"--export_base={a_file / 'models'}"),
         f"cannot be written ({a_file} is not a writable directory)"),
        (("tfnmt.export", f"--run_dir={run}", f"--export_base={a_file}", "--format=ctranslate2"),
         f"cannot be written ({a_file} is not a writable directory)"),
        (("tfnmt.vocab", f"--input={src}", f"--model_prefix={a_file / 'v'}"),
         f"cannot be written ({a_file} is not a writable directory)"),
    ]
    for (command, said), result in zip(cases, run_modules(*[c for c, _ in cases])):
        assert_one_error(result, said)
    assert sorted(os.listdir(tmp_path)) == ["a_file", "broken", "copy.src", "results",
                                            "rows_results"]
    assert open(copy).read() == open(src).read() and a_file.read_text() == "kept\n"
    assert sorted(os.listdir(results_dir)) == ["notes.json"]
    assert sorted(os.listdir(rows_dir)) == ["x.json"]


def test_a_path_the_file_system_refuses_is_one_error_line(tmp_path):
    """An OSError that names its path (a full disk, a read-only mount: what no check before the
    work can rule out) ends a command with one line; one that names none keeps its traceback."""
    missing = tmp_path / "missing" / "x"
    probe = ("import sys; from tfnmt.core.errors import run_main\n"
             "def main(argv):\n"
             "    if sys.argv[1:] == ['none']: raise OSError('no path')\n"
             f"    open({str(missing)!r}, 'w')\n"
             "run_main(main)")
    named, unnamed = [subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                                     text=True, check=False) for args in ([], ["none"])]
    assert_one_error(named, f"error: {missing}: No such file or directory.")
    assert len(named.stderr.strip().splitlines()) == 1, named.stderr
    assert unnamed.returncode == 1 and "Traceback" in unnamed.stderr and "no path" in unnamed.stderr


class NotServing(http.server.BaseHTTPRequestHandler):
    """Answers every request, as a web server that is not TensorFlow Serving might."""

    def do_POST(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<html>hello</html>")

    def log_message(self, *args):
        pass


def test_client_names_a_server_that_is_not_tensorflow_serving():
    server = http.server.HTTPServer(("127.0.0.1", 0), NotServing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(UserError, match="did not answer as TensorFlow Serving's REST API"):
            translate(["a"], f"127.0.0.1:{server.server_port}", "teacher")
    finally:
        server.shutdown()
