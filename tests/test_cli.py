"""translate, evaluate, average_checkpoints, benchmark and report, run as users run them."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from concurrent import futures

import numpy as np
import pytest
import sacrebleu
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.inference.translator import Translator

from tests.conftest import REPO, run_module, run_modules


def in_process(run, sentences, **config):
    model, _ = runs.restore_model(run, "latest")
    src, tgt = run.tokenizers()
    return Translator(model, src, tgt, DecodeConfig(**config), run.model.max_length).translate(
        sentences)


def test_translate_file_and_stdin_match_in_process(tmp_path, trained_run, reverse_task):
    sentences = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:20]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(sentences) + "\n")
    out = tmp_path / "out" / "hyp.txt"
    with futures.ThreadPoolExecutor(2) as pool:  # both commands run while this process decodes
        from_file = pool.submit(
            run_module, "tfnmt.translate", f"--run_dir={trained_run.run_dir}",
            "--checkpoint=latest", f"--input={source}", f"--output={out}", "--beam_size=3",
            "--n_best=2", "--batch_size=7", "--with_scores")
        from_stdin = pool.submit(
            run_module, "tfnmt.translate", f"--run_dir={trained_run.run_dir}",
            "--checkpoint=latest", "--beam_size=1", "--noxla",
            input_text="\n".join(sentences[:3]) + "\n")
        expected = in_process(trained_run, sentences, beam_size=3, n_best=2, batch_size=7)
        greedy = in_process(trained_run, sentences[:3], beam_size=1)
        result, piped = from_file.result(), from_stdin.result()
    assert result.returncode == 0, result.stderr[-2000:]
    lines = out.read_text().splitlines()
    assert len(lines) == 40 and not list(out.parent.glob("*.tmp-*"))
    for i, n_best in enumerate(expected):
        for j, (text, score) in enumerate(n_best):
            got_score, got_text = lines[2 * i + j].split("\t")
            assert got_text == text and abs(float(got_score) - score) < 1e-3
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert piped.stdout.splitlines() == [n[0][0] for n in greedy]


def test_translate_edge_inputs_in_process(trained_run):
    sentences = ["", "   ", "a " * 300, "l", "b c"]
    results = in_process(trained_run, sentences, beam_size=2, batch_size=2)
    assert len(results) == 5 and all(len(r) == 1 for r in results)
    assert results[0] == [("", 0.0)] and results[1] == [("", 0.0)]  # nothing in, nothing out
    assert in_process(trained_run, [], beam_size=2) == []
    # A short last batch is padded to a power of two: the same translations as alone (scores
    # to float rounding: matmuls of other shapes sum in another order).
    alone = [in_process(trained_run, [s], beam_size=2)[0] for s in sentences[2:]]
    batched = in_process(trained_run, sentences[2:], beam_size=2, batch_size=4)
    assert [[t for t, _ in r] for r in batched] == [[t for t, _ in r] for r in alone]
    np.testing.assert_allclose([[s for _, s in r] for r in batched],
                               [[s for _, s in r] for r in alone], rtol=1e-5)


def test_translate_rejects_bad_input_and_output_before_any_work(tmp_path, trained_run):
    run = f"--run_dir={trained_run.run_dir}"
    cases = [
        (["--output", str(tmp_path)], "a b\n", r"error: output .* is a directory"),
        (["--max_length_a=-1"], "a b\n", r"error: the output limit"),
        ([], b"a b\n\xff c\n", r"error: stdin line 2 is not valid UTF-8"),
    ]
    results = [run_module("tfnmt.translate", run, *extra, input_text=text)
               for extra, text, _ in cases]
    for (extra, text, message), result in zip(cases, results):
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert re.search(message, result.stderr.strip().splitlines()[-1]), result.stderr[-2000:]
    assert not list(tmp_path.parent.glob("*.tmp-*"))


def test_translate_keeps_lines_aligned_and_warns_about_long_ones(tmp_path, trained_run):
    source = tmp_path / "in.txt"
    source.write_bytes(b"a b\nc\rd e\n\n" + b"f " * 300 + b"\nl\n")  # a lone CR in line 2
    out = tmp_path / "out.txt"
    result = run_module("tfnmt.translate", f"--run_dir={trained_run.run_dir}",
                        "--checkpoint=latest", "--beam_size=1", f"--input={source}",
                        f"--output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = out.read_text().split("\n")[:-1]
    assert len(lines) == 5 and lines[2] == ""
    assert re.search(r"warning: line 4 has 300 tokens; the model reads at most 255",
                     result.stderr)


def test_translate_streams_from_a_pipe(trained_run):
    proc = subprocess.Popen([sys.executable, "-m", "tfnmt.translate",
                             f"--run_dir={trained_run.run_dir}", "--checkpoint=latest",
                             "--beam_size=1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    import threading

    watchdog = threading.Timer(240, proc.kill)  # a translator that waits for EOF fails, not hangs
    watchdog.start()
    try:
        proc.stdin.write("a b c\n")
        proc.stdin.flush()
        first = proc.stdout.readline()  # answered while stdin is still open
        expected = in_process(trained_run, ["a b c", "d e"], beam_size=1)
        assert first.rstrip("\n") == expected[0][0][0]
        proc.stdin.write("d e\n")
        proc.stdin.close()
        assert proc.stdout.read().splitlines() == [expected[1][0][0]]
        assert proc.wait(timeout=120) == 0
    finally:
        watchdog.cancel()
        proc.kill()


def test_evaluate_scores_like_sacrebleu_and_records_provenance(tmp_path, trained_run,
                                                               reverse_task):
    result_path = tmp_path / "results" / "tiny.json"
    result = run_module("tfnmt.evaluate", f"--run_dir={trained_run.run_dir}", "--checkpoint=latest",
                        f"--source={reverse_task['test.src']}",
                        f"--reference={reverse_task['test.tgt']}", "--beam_size=2",
                        f"--result={result_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result_path.read_text())
    values = record["values"]
    hyps = open(values["translations"], encoding="utf-8").read().splitlines()
    refs = open(reverse_task["test.tgt"], encoding="utf-8").read().splitlines()
    assert values["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)
    assert values["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert set(record["provenance"]) >= {"command", "git_commit", "date", "cpu", "cpu_threads"}
    assert "tfnmt.evaluate" in record["provenance"]["command"]


def test_evaluate_rejects_misaligned_files(tmp_path, reverse_task):
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("a\n")
    result = run_module("tfnmt.evaluate", f"--hypothesis={hyp}",
                        f"--reference={reverse_task['test.tgt']}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: 1 hypotheses but 200 references" in result.stderr


def test_average_checkpoints_is_the_mean(trained_run):
    result = run_module("tfnmt.average_checkpoints", f"--run_dir={trained_run.run_dir}",
                        "--num_last=2")
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = os.path.join(trained_run.checkpoint_dir, "ckpt-{}")
    a, b = tf.train.load_checkpoint(ckpt.format(30)), tf.train.load_checkpoint(ckpt.format(60))
    model, path = runs.restore_model(trained_run, "averaged")
    reader = tf.train.load_checkpoint(path)
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("weights/")]
    assert len(names) == len(model.trainable_variables)
    for name in names:
        np.testing.assert_allclose(reader.get_tensor(name),
                                   (a.get_tensor(name) + b.get_tensor(name)) / 2, atol=1e-7)


def test_benchmark_saves_every_run_resumes_and_computes_alpha(tmp_path, trained_run,
                                                              reverse_task):
    """One benchmark timed in two invocations: the first stops at a run whose checkpoint
    cannot be read, the second resumes it; the finished rows and tables are then checked as one
    invocation's."""
    out = tmp_path / "bench"
    common = ["--checkpoint=latest", f"--source={reverse_task['test.src']}",
              f"--reference={reverse_task['test.tgt']}", "--num_sentences=12",
              "--batch_sizes=1,4", "--beam_sizes=2", "--reference_beam=2", "--xla=both",
              "--batch_threads=1:1,1:2", f"--output={out}"]
    # The second run's weights are cut short: the invocation stops after timing (and saving)
    # the first run.
    broken = tmp_path / "broken"
    shutil.copytree(trained_run.run_dir, broken)
    data = next((broken / "checkpoints").glob("ckpt-60.data-*"))
    data.write_bytes(data.read_bytes()[:100])
    stopped = run_module("tfnmt.benchmark", f"--runs=a={trained_run.run_dir}@latest,b={broken}",
                         *common)
    assert stopped.returncode == 1 and "is unreadable" in stopped.stderr, stopped.stderr[-2000:]
    partial = json.loads((tmp_path / "bench.json").read_text())["values"]
    assert partial["complete"] is False and [
        (r["run"], r["xla"], r["batch"]) for r in partial["rows"]] == [
        ("a", True, 1), ("a", True, 4), ("a", False, 1), ("a", False, 4)]
    assert "| a | beam 2 | off | 4 |" in (tmp_path / "bench.md").read_text()
    # Side by side (the resumed invocation rewrites the file with the same settings).
    other, resumed = run_modules(
        ("tfnmt.benchmark", f"--runs=a={trained_run.run_dir}@latest", *common,
         "--length_penalty=0.2", "--resume"),
        ("tfnmt.benchmark", f"--runs=a={trained_run.run_dir}@latest,b={trained_run.run_dir}",
         *common, "--resume"))
    assert other.returncode == 1 and "measured with other length_penalty" in other.stderr
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = json.loads((tmp_path / "bench.json").read_text())
    values = record["values"]
    rows = values["rows"]
    assert values["complete"] is True
    # The BLEU and chrF of the rows are sacreBLEU's defaults against one reference.
    assert values["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert values["chrf_signature"].startswith("nrefs:1|")
    # a's rows are the stopped invocation's (not timed again); b's were timed now, and alpha
    # divides by a's kept time.
    assert [r["seconds"] for r in rows[:4]] == [r["seconds"] for r in partial["rows"]]
    assert "kept a beam 2 xla=False batch=1" in resumed.stdout
    for a, b in zip(rows[:4], rows[4:]):
        assert abs(b["alpha"] - a["seconds"] / b["seconds"]) < 0.01 + 0.01 * b["alpha"]

    assert len(rows) == 2 * 2 * 2  # runs x batch sizes x XLA settings
    for row in rows:
        ref = next(r for r in rows if r["run"] == "a" and r["beam"] == 2 and
                   r["batch"] == row["batch"] and r["xla"] == row["xla"])
        assert abs(row["alpha"] - ref["seconds"] / row["seconds"]) < 0.01 + 0.01 * row["alpha"]
    # Same model, same settings: identical translations whatever the batch size or XLA.
    bleus = {(r["beam"]): set() for r in rows}
    for r in rows:
        bleus[r["beam"]].add(r["bleu"])
    assert all(len(v) == 1 for v in bleus.values())
    text = (tmp_path / "bench.md").read_text()
    assert text.startswith("| run | decoding |")
    # The by-batch table (the HRT paper's Table 10 layout): one line per run, decoding and XLA
    # setting with BLEU, then time and alpha at batch 1 and 4, the same numbers as the rows.
    by_batch = text.split("alpha vs a beam 2 at the same batch size:")[1].strip().splitlines()
    assert by_batch[0] == ("| run | decoding | XLA | BLEU | chrF2 | time (s) b=1 | alpha b=1 | "
                           "time (s) b=4 | alpha b=4 |")
    assert len(by_batch) == 2 + 2 * 2
    for line in by_batch[2:]:
        run, decoding, xla, bleu, chrf, *cells = [c.strip() for c in line.strip("|").split("|")]
        for batch, seconds, alpha in zip((1, 4), cells[::2], cells[1::2]):
            row = next(r for r in rows if (r["run"], r["decoding"], r["batch"]) == (
                run, decoding, batch) and r["xla"] == (xla == "on"))
            assert (float(seconds), float(alpha), float(bleu), float(chrf)) == (
                row["seconds"], row["alpha"], row["bleu"], row["chrf"])
    assert {r["checkpoint"] for r in rows} == {runs.find_checkpoint(trained_run, "latest")}
    # Each row names the weights it timed (a frontier row file outlives the run).
    from tfnmt.models import fingerprint

    assert {r["weights"] for r in rows} == {
        fingerprint(runs.restore_model(trained_run, "latest")[0])}
    # --batch_threads=1:1,1:2: the batch-1 rows were timed in a child with one intra-op thread
    # and in one with two (read back from TensorFlow there), each keeping the faster; the
    # others with TensorFlow's default (0).
    assert {r["intra_op_threads"] for r in rows if r["batch"] == 4} == {0}
    for r in (r for r in rows if r["batch"] == 1):
        timed = r["seconds_by_threads"]
        assert sorted(timed) == ["1", "2"] and r["seconds"] == min(timed.values())
        assert timed[str(r["intra_op_threads"])] == r["seconds"]
    assert "seconds_by_threads" not in next(r for r in rows if r["batch"] == 4)
    assert values["batch_threads"] == {"1": [1, 2]} and "intra_op_threads" not in values


@pytest.mark.parametrize("runs_flag, error", [
    ("a={run},a={run}", "error: --runs names must differ, got a, a."),
    ("a={run},b={missing}", "is not a tfnmt run directory"),
    ("a={run},b={run}@ckpt-45", "error: checkpoint ckpt-45 does not exist; {run} has best, "
                                "latest, averaged, ckpt-30, ckpt-60 or a checkpoint path."),
])
def test_benchmark_checks_every_run_before_timing_any(tmp_path, trained_run, reverse_task,
                                                       runs_flag, error):
    fill = {"run": trained_run.run_dir, "missing": tmp_path / "missing"}
    result = run_module("tfnmt.benchmark", "--runs=" + runs_flag.format(**fill),
                        f"--source={reverse_task['test.src']}", "--batch_sizes=1",
                        "--beam_sizes=1", "--reference_beam=1", f"--output={tmp_path / 'b'}")
    assert result.returncode == 1 and error.format(**fill) in result.stderr, result.stderr
    assert not (tmp_path / "b.json").exists()  # nothing timed


def test_a_checkpoint_is_found_by_its_name(trained_run):
    assert runs.find_checkpoint(trained_run, "ckpt-30") == os.path.join(
        trained_run.checkpoint_dir, "ckpt-30")
    path = runs.find_checkpoint(trained_run, "latest")
    assert runs.find_checkpoint(trained_run, path) == path


def test_report_renders_results_into_their_own_file(tmp_path, trained_run, reverse_task):
    results = tmp_path / "results"
    assert run_module("tfnmt.evaluate", f"--hypothesis={reverse_task['test.tgt']}",
                      f"--reference={reverse_task['test.tgt']}", "--name=oracle",
                      f"--result={results / 'oracle.json'}").returncode == 0
    output = tmp_path / "docs" / "results.md"
    output.parent.mkdir()
    output.write_text("old\n")
    result = run_module("tfnmt.report", f"--output={output}", f"--results={results}")
    assert result.returncode == 0, result.stderr[-2000:]
    text = output.read_text()
    assert "old" not in text
    assert re.search(r"\| \[oracle\]\(.*oracle.json\) \| - \| - \| - \| 100.00 \|", text)


def test_quickstart_reports_missing_data(tmp_path):
    result = run_module("tfnmt.quickstart", f"--data_dir={tmp_path}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "train.en is missing" in result.stderr


def test_benchmark_breakdown_mode(tmp_path, trained_run):
    out = tmp_path / "breakdown"
    result = run_module("tfnmt.benchmark", "--mode=breakdown", f"--runs=t={trained_run.run_dir}",
                        "--checkpoint=latest", "--pseudo_sentences=4", "--pseudo_length=6",
                        "--breakdown_beam=2", "--breakdown_batch=2", "--xla=off",
                        f"--output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads((tmp_path / "breakdown.json").read_text())["values"]["rows"][0]
    assert row["run"] == "t" and row["total"] > 0 and row["FFN"] > 0


def test_report_shows_figures_hint_scales_nat_candidates_and_imitation():
    from tfnmt.report import render

    provenance = {"command": "python -m tfnmt.analyze", "git_commit": "0" * 40, "date": "d",
                  "cpu": "c", "cpu_threads": 2, "tensorflow": "t"}
    records = [("results/h.json", {"kind": "analysis_heatmaps", "provenance": provenance,
                                   "values": {"png": "results/h.png",
                                              "translations": {"teacher": "ein Hund"}}}),
               ("results/s.json", {"kind": "analysis_hint_scales", "provenance": provenance,
                                   "values": {"init_from": "", "nll": 8.7, "hid": 1.05,
                                              "align": 1.99, "tokens": 10}}),
               ("results/c.json", {"kind": "analysis_nat_candidates", "provenance": provenance,
                                   "values": {"run": "nat", "source": "data/val.en",
                                              "candidates": 9, "selection": "normalized",
                                              "bleu": {"normalized": 35.1, "total": 34.1,
                                                       "oracle": 41.2},
                                              "oracle_rank_share": [0.31] + [0.08625] * 8}}),
               ("results/d.json", {"kind": "analysis_nat_candidates", "provenance": provenance,
                                   "values": {"run": "nat", "source": "data/test.en",
                                              "candidates": 9, "selection": "normalized",
                                              "bleu": {"normalized": 35.1, "total": 34.1,
                                                       "oracle": 41.2, "length_oracle": 31.2},
                                              "oracle_rank_share": [0.31] + [0.08625] * 8,
                                              "rescorer_beam": {"beam": 9, "bleu": 40.3,
                                                                "oracle": 52.3,
                                                                "length_penalty": 1.0}}}),
               ("results/i.json", {"kind": "analysis_imitation", "provenance": provenance,
                                   "values": {"runs": {name: {
                                       "il_lambda": 0.001, "nll_per_token": 1.5,
                                       "imitation_per_token": kl + 4.0,
                                       "imitation_kl_per_token": kl, "gradient_ratio": ratio,
                                       "gradient_cosine": 0.25, "tokens": 20}
                                       for name, kl, ratio in (("with", 0.5, 0.00123),
                                                               ("without", 0.75, 0.02))}}})]
    text = render(records)
    assert ("| [i.json](results/i.json) | with | 0.001 | 1.5 | 4.5 | 0.5 | 1.23e-03 | 0.25 | 20 |"
            in text and "| without | 0.001 | 1.5 | 4.75 | 0.75 | 2.00e-02 | 0.25 | 20 |" in text)
    # An analysis from before the yardsticks shows dashes for them.
    assert ("| [c.json](results/c.json) | nat | val.en | 9 | 35.1 | 34.1 | 41.2 | "
            "0.31 (normalized) | – | – |") in text
    assert ("| [d.json](results/d.json) | nat | test.en | 9 | 35.1 | 34.1 | 41.2 | "
            "0.31 (normalized) | 31.2 | 40.3 / 52.3 (beam 9) |") in text
    assert "![Decoder hidden-state similarity and encoder-decoder attention](results/h.png)" in text
    assert "- teacher: ein Hund" in text
    assert "| [s.json](results/s.json) | random initialisation | 8.7 | 1.05 | 1.99 | 10 |" in text


def test_corrupted_checkpoints_give_one_line_naming_the_file(tmp_path, trained_run):
    import glob
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, copy)
    data = glob.glob(str(copy / "checkpoints" / "ckpt-60.data-*"))[0]
    with open(data, "wb") as f:
        f.write(os.urandom(4096))
    results = run_modules(("tfnmt.translate", f"--run_dir={copy}", "--checkpoint=latest"),
                          ("tfnmt.average_checkpoints", f"--run_dir={copy}", "--num_last=2"),
                          input_text="a b\n")
    for result in results:
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        line = result.stderr.strip().splitlines()[-1]
        assert re.match(r"error: checkpoint .*ckpt-60 .* is unreadable: .* Intact checkpoints "
                        r"of .*: .*ckpt-30", line), line


def test_help_shows_the_decoding_flags_and_commands_start_quietly(tmp_path):
    commands = [(m, "--help") for m in ("tfnmt.translate", "tfnmt.evaluate", "tfnmt.export",
                                        "tfnmt.distill")]
    commands += [("tfnmt.saved_model_cli", "show", "--help"), ("tfnmt.saved_model_cli", "-h"),
                 ("tfnmt.quickstart", "--help"),
                 ("tfnmt.translate", f"--run_dir={tmp_path / 'nothing'}")]
    results = run_modules(*commands, fresh=True)  # start-up itself is under test
    for (module, _), result in zip(commands[:4], results):
        assert result.returncode == 0, result.stderr[-2000:]
        for flag in ("--beam_size", "--length_penalty", "--n_best", "--checkpoint",
                     "--batch_size", "--method", "--[no]verbose"):
            assert flag in result.stdout, (module, flag)
    for result, shown in zip(results[4:6], ("--dir", "{show,run,")):
        assert result.returncode == 0 and shown in result.stdout, result.stderr[-2000:]
    assert "flagfile_train" not in results[6].stdout
    # TensorFlow's start-up lines (and the CUDA error without a GPU) stay off the console: an
    # error is the only line a user sees.
    result = results[7]
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nothing'} is not a tfnmt run directory (no config.json)."]


def test_flag_errors_are_one_line(tmp_path):
    """absl's own parser would print 'FATAL Flags parsing error' and a usage hint."""
    results = [run_module("tfnmt.translate", "--no_such_flag=1"),
               run_module("tfnmt.train", f"--flagfile={tmp_path / 'missing.flags'}"),
               run_module("tfnmt.evaluate", "--beam_size=four")]
    for result, said in zip(results, ("no_such_flag", "missing.flags", "four")):
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
        assert lines[0].startswith("error: ") and said in lines[0], lines


def test_intra_op_threads_reach_tensorflow_before_the_command_runs(tmp_path, trained_run,
                                                                 reverse_task):
    """--intra_op_threads (every command's, tfnmt.cli) is set before the command's first tensor:
    a translation under it equals the default's, and a negative count is one error line."""
    probe = ("import tfnmt.cli; import tensorflow as tf; from tfnmt.core.errors import run_main; "
             "run_main(lambda argv: print(tf.config.threading.get_intra_op_parallelism_threads()))")
    seen = [subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                           cwd=REPO, check=False) for args in ([], ["--intra_op_threads=1"])]
    assert [r.stdout.split() for r in seen] == [["0"], ["1"]], seen[1].stderr[-2000:]
    sentences = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:5]
    one, bad = run_modules(
        ("tfnmt.translate", f"--run_dir={trained_run.run_dir}", "--checkpoint=latest",
         "--beam_size=2", "--intra_op_threads=1"),
        ("tfnmt.translate", f"--run_dir={trained_run.run_dir}", "--intra_op_threads=-1"),
        input_text="\n".join(sentences) + "\n")
    assert one.returncode == 0, one.stderr[-2000:]
    assert one.stdout.splitlines() == [n[0][0] for n in in_process(trained_run, sentences,
                                                                    beam_size=2)]
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 1 and len(lines) == 1 and "intra_op_threads" in lines[0], lines


@pytest.mark.parametrize("signum,to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_a_stopped_quickstart_stage_saves_before_the_job_exits(tmp_path, signum, to_group):
    """SIGTERM to the job, or Ctrl-C (SIGINT to its whole process group): the job waits for
    its stage to save and exits with the stage's code (subprocess.run killed it instead)."""
    saved = tmp_path / "saved"
    job = subprocess.Popen(
        [sys.executable, "-c", "from tfnmt.quickstart import stage; "
         f"stage('train', 'tests.fixtures.slow_stop', {str(saved)!r})"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    while job.stdout.readline().strip() != "ready":  # the stage's title and command first
        assert job.poll() is None, job.stderr.read()[-2000:]
    if to_group:
        os.killpg(job.pid, signum)
    else:
        job.send_signal(signum)
    code = job.wait(timeout=30)
    assert saved.read_text() == "saved" and code == 128 + signum, job.stderr.read()[-2000:]
    assert "run the same command to resume" in job.stderr.read()


def test_quickstart_never_writes_into_the_recorded_results_by_default():
    help_text = run_module("tfnmt.quickstart", "--help").stdout
    block = help_text[help_text.index("--result:"):].split("\n  --")[0]
    assert "(default: '')" in block and "<run_dir>/test2016.json" in block
