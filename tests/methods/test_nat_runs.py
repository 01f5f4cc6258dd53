"""Hint-based NART end to end on the tiny task: training with hints from the tiny AT run,
C measured on the training data, decoding through the Translator, export with the rescorer."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig, ModelConfig
from tfnmt.core.errors import UserError
from tfnmt.data.pipeline import measure_length_offset
from tfnmt.data.tokenizer import load_tokenizer
from tfnmt.inference.translator import load_rescorer, resolve_method, Translator
from tfnmt.serving.saved_model import export_run
from tfnmt.training.trainer import Trainer

from tests.conftest import make_run, run_module, run_modules
from tests.serving.test_saved_model import (assert_export_matches, shortlisted_copy,
                                            SHORTLIST_TEXTS)


@pytest.fixture(scope="module")
def nart_run(tmp_path_factory, reverse_task, trained_run):
    model = ModelConfig.from_shape("tiny", architecture="nart", dropout=0.0,
                                   length_offset=measure_length_offset(run_data(reverse_task)))
    run = make_run(tmp_path_factory.mktemp("runs") / "nart", reverse_task, model=model,
                   train_steps=40, objective="hint", teacher_run=trained_run.run_dir,
                   teacher_checkpoint="latest", learning_rate=5e-3, xla=True)
    outputs = []
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    step = trainer._make_train_step()
    trainer._train_step = lambda iterator: outputs.append(step(iterator)) or outputs[-1]
    trainer.train()
    return run, outputs


def test_hint_training_lowers_nll_and_alignment_hint(nart_run):
    _, outputs = nart_run
    first, last = outputs[0], outputs[-1]
    assert float(last["nll"]) < 0.8 * float(first["nll"])
    # Both hints are active from the start (a fresh NAT's states are alike, its attention is
    # not the teacher's), and training moves the attention towards the teacher's.
    assert float(first["align"]) > 0 and float(first["hid"]) > 0
    assert float(last["align"]) < float(first["align"])


def test_length_offset_is_the_mean_token_difference(reverse_task):
    tokenizer = load_tokenizer(reverse_task["vocab"])
    pairs = zip(open(reverse_task["train.src"]).read().splitlines(),
                open(reverse_task["train.tgt"]).read().splitlines())
    differences = [len(tokenizer.tokenize(tf.constant([t])).to_list()[0]) -
                   len(tokenizer.tokenize(tf.constant([s])).to_list()[0]) for s, t in pairs]
    assert abs(measure_length_offset(run_data(reverse_task)) - np.mean(differences)) < 1e-3


def run_data(task):
    from tfnmt.core.config import DataConfig

    return DataConfig(train_source=task["train.src"], train_target=task["train.tgt"],
                      source_vocab=task["vocab"])


def test_hints_need_a_teacher_of_the_same_depth(tmp_path, reverse_task, trained_run):
    model = ModelConfig.from_shape("tiny", architecture="nart")
    model.decoder_layers = 2
    run = make_run(tmp_path / "deep", reverse_task, model=model, objective="hint",
                   teacher_run=trained_run.run_dir)
    with pytest.raises(Exception, match="hints need the teacher's decoder depth and heads"):
        Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)


def test_a_nat_is_rescored_by_its_teacher_unless_told_otherwise(nart_run, trained_run):
    """Flags left unset (None): both papers rescore a NAT's length candidates with the AT it
    learned from, at the checkpoint it learned from."""
    run, _ = nart_run

    def resolved(r, **given):
        return resolve_method(DecodeConfig(method="auto", length_halfwidth=2,
                                           **dict(dict(rescore_run=None,
                                                       rescore_checkpoint=None), **given)), r)

    default = resolved(run)
    assert (default.rescore_run, default.rescore_checkpoint) == (trained_run.run_dir, "latest")
    assert load_rescorer(default, run) is not None
    assert resolved(run, rescore_checkpoint="best").rescore_checkpoint == "best"
    assert resolved(run, rescore_run="").rescore_run == ""  # the NAT scores itself
    plain = resolved(trained_run)  # an AT without a teacher: nothing to rescore with
    assert (plain.method, plain.rescore_run, plain.rescore_checkpoint) == (
        "autoregressive", "", "best")


def test_exported_nart_with_rescoring_equals_in_process(nart_run, trained_run, reverse_task,
                                                        tmp_path):
    run, _ = nart_run
    config = DecodeConfig(method="auto", length_halfwidth=2, rescore_run=trained_run.run_dir,
                          rescore_checkpoint="latest")
    version_dir = export_run(run.run_dir, str(tmp_path / "nart"), "latest", config)
    texts = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:6]
    resolved = dataclasses.replace(resolve_method(config, run), batch_size=64)
    assert resolved.method == "nat"
    model, _ = runs.restore_model(run, "latest")
    src, tgt = run.tokenizers()
    rescorer = load_rescorer(resolved, run)
    with_rescorer = Translator(model, src, tgt, resolved, run.model.max_length,
                               rescorer).translate(texts)
    alone = Translator(model, src, tgt, dataclasses.replace(resolved, rescore_run=""),
                       run.model.max_length).translate(texts)
    # The rescorer decides: its scores are the AT's, not the NAT's own.
    assert [e[0][1] for e in with_rescorer] != [a[0][1] for a in alone]
    assert_export_matches(version_dir, run, resolved, texts, rescorer)


def test_benchmark_decodes_each_nat_run_with_its_candidate_rule(nart_run, reverse_task):
    """--nat_selection per run: the named run's rows use the given rule, the other run its
    method's (the hint paper's total log-probability); each rescored row's BLEU is that of the
    Translator with its rule, and the rules pick different candidates on this run."""
    import sacrebleu

    from tfnmt.evaluation.benchmark import benchmark, parse_nat_selection

    run, _ = nart_run
    sources = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:24]
    references = open(reverse_task["test.tgt"], encoding="utf-8").read().splitlines()[:24]
    specs = [("n", run.run_dir, "latest"), ("t", run.run_dir, "latest")]
    selections = parse_nat_selection(["n=normalized"], ["n", "t"])
    assert selections == {"n": "normalized"}
    base = DecodeConfig(method="auto", nat_selection=None, rescore_run=None,
                        rescore_checkpoint=None)  # the benchmark's: rescored by the teacher
    rows = benchmark(specs, sources, references, [8], [1], [True], base, 1, halfwidths=(0, 2),
                     nat_selection=selections)
    rescored = {r["run"]: r for r in rows if r["decoding"] == "nat 5 lengths AT-rescored"}
    assert {r["run"]: r["nat_selection"] for r in rows if r["decoding"] == "nat 1 length"} == {
        "n": None, "t": None}
    assert (rescored["n"]["nat_selection"], rescored["t"]["nat_selection"]) == (
        "normalized", "total")
    model, _ = runs.restore_model(run, "latest")
    src, tgt = run.tokenizers()
    hypotheses = {}
    for rule in ("normalized", "total"):
        config = resolve_method(DecodeConfig(method="auto", length_halfwidth=2, batch_size=8,
                                             nat_selection=rule, rescore_run=None,
                                             rescore_checkpoint=None), run)
        translator = Translator(model, src, tgt, config, run.model.max_length,
                                load_rescorer(config, run))
        hypotheses[rule] = [n[0][0] for n in translator.translate(sources)]
    assert hypotheses["normalized"] != hypotheses["total"]
    for name, rule in (("n", "normalized"), ("t", "total")):
        assert rescored[name]["bleu"] == round(
            sacrebleu.corpus_bleu(hypotheses[rule], [references]).score, 2)


def test_benchmark_times_nat_rows_with_repeats_collapsed_too(nart_run, reverse_task):
    """benchmark --collapse_repeats: each nat setting twice, the second row's BLEU that of the
    Translator with --collapse_repeats (whose translations differ from the plain ones here)."""
    import sacrebleu

    from tfnmt.evaluation.benchmark import benchmark

    run, _ = nart_run
    sources = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:24]
    references = open(reverse_task["test.tgt"], encoding="utf-8").read().splitlines()[:24]
    base = DecodeConfig(method="auto", nat_selection=None, collapse_repeats=True)
    rows = benchmark([("n", run.run_dir, "latest")], sources, references, [8], [1], [True],
                     base, 1, halfwidths=(0,))
    assert [r["decoding"] for r in rows] == ["nat 1 length", "nat 1 length collapsed"]
    model, _ = runs.restore_model(run, "latest")
    src, tgt = run.tokenizers()
    hypotheses = []
    for row, collapse in zip(rows, (False, True)):
        config = resolve_method(DecodeConfig(method="auto", length_halfwidth=0, batch_size=8,
                                             nat_selection=None, collapse_repeats=collapse), run)
        hypotheses.append([n[0][0] for n in Translator(model, src, tgt, config,
                                                       run.model.max_length).translate(sources)])
        assert row["bleu"] == round(sacrebleu.corpus_bleu(hypotheses[-1], [references]).score, 2)
    assert hypotheses[0] != hypotheses[1]  # so a row that ignored the flag would be caught


def test_nat_selection_flag_errors_name_the_runs():
    from tfnmt.evaluation.benchmark import parse_nat_selection

    assert parse_nat_selection(["total"], ["a", "b"]) == {"a": "total", "b": "total"}
    with pytest.raises(UserError, match=r"pairs naming --runs \(a, b\); got c=total, b=best"):
        parse_nat_selection(["a=total", "c=total", "b=best"], ["a", "b"])


@pytest.mark.parametrize("rescored", [True, False])
def test_exported_nart_over_a_shortlist_equals_in_process(nart_run, trained_run, tmp_path,
                                                          monkeypatch, rescored):
    """--shortlist: the exported NAT (the union computed in its graph; an AT rescorer, which
    travels with it, over the whole vocabulary) translates as in process. Self-scored, the
    scores are the NAT's log-probabilities over the union, so they show the union is used."""
    run, lists = shortlisted_copy(nart_run[0], tmp_path / "nart", monkeypatch)
    config = DecodeConfig(method="auto", length_halfwidth=1, shortlist=True,
                          rescore_run=trained_run.run_dir if rescored else "",
                          rescore_checkpoint="latest")
    version_dir = export_run(run.run_dir, str(tmp_path / "export"), "latest", config)
    resolved = resolve_method(config, run)
    assert resolved.method == "nat"
    rescorer = load_rescorer(resolved, run)
    assert (rescorer is not None) == rescored
    assert_export_matches(version_dir, run, resolved, SHORTLIST_TEXTS, rescorer,
                          shortlist=lists)


def test_cli_refuses_nat_decoding_for_an_autoregressive_run(trained_run, reverse_task):
    result = run_module("tfnmt.translate", f"--run_dir={trained_run.run_dir}",
                        "--checkpoint=latest", f"--input={reverse_task['test.src']}",
                        "--method=nat")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: nat decoding is for non-autoregressive models" in result.stderr


def test_translate_lists_a_nats_length_candidates(nart_run, reverse_task):
    """--n_best with a NAT: its 2B+1 candidates, the scores (the teacher's total
    log-probabilities) falling as the rule ranks them (total); more than 2B+1 is one error
    line."""
    run, _ = nart_run
    common = ("tfnmt.translate", f"--run_dir={run.run_dir}", "--checkpoint=latest",
              f"--input={reverse_task['test.src']}", "--length_halfwidth=1", "--with_scores")
    listed, bad = run_modules((*common, "--n_best=3"), (*common, "--n_best=4"))
    assert listed.returncode == 0, listed.stderr[-2000:]
    lines = listed.stdout.splitlines()
    sentences = len(open(reverse_task["test.src"], encoding="utf-8").read().splitlines())
    assert len(lines) == 3 * sentences
    for i in range(0, len(lines), 3):
        scores = [float(line.split("\t")[0]) for line in lines[i:i + 3]]
        assert scores == sorted(scores, reverse=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert ("error: nat decoding returns its 3 length candidates at most; got n_best 4."
            in bad.stderr)


def test_analyze_nat_candidates_ranks_the_translators_candidates(nart_run, trained_run,
                                                                  reverse_task, tmp_path):
    """--mode=nat_candidates: each rule's BLEU is that of the Translator keeping one candidate
    by it (so the n-best list's head is the 1-best decode), the oracle is at least as good as
    either rule on this run, and the oracle's ranks cover every sentence once. An AT run is one
    error line."""
    import json

    import sacrebleu

    run, _ = nart_run
    result = tmp_path / "candidates.json"
    out, bad = run_modules(
        ("tfnmt.analyze", "--mode=nat_candidates", f"--runs=nat={run.run_dir}@latest",
         f"--source={reverse_task['test.src']}", f"--target={reverse_task['test.tgt']}",
         "--length_halfwidth=2", f"--result={result}"),
        ("tfnmt.analyze", "--mode=nat_candidates", f"--runs={trained_run.run_dir}@latest",
         f"--source={reverse_task['test.src']}", f"--target={reverse_task['test.tgt']}"))
    assert out.returncode == 0, out.stderr[-2000:]
    values = json.loads(result.read_text())["values"]
    assert (values["candidates"], values["selection"]) == (5, "total")  # the hint paper's rule
    assert len(values["oracle_rank_share"]) == 5
    assert abs(sum(values["oracle_rank_share"]) - 1) < 1e-3
    sources = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()
    references = open(reverse_task["test.tgt"], encoding="utf-8").read().splitlines()
    model, _ = runs.restore_model(run, "latest")
    for rule in ("normalized", "total"):
        config = resolve_method(DecodeConfig(method="auto", length_halfwidth=2,
                                             nat_selection=rule, rescore_run=None,
                                             rescore_checkpoint=None), run)
        translator = Translator(model, *run.tokenizers(), config, run.model.max_length,
                                load_rescorer(config, run))
        hypotheses = [n[0][0] for n in translator.translate(sources)]
        assert values["bleu"][rule] == round(
            sacrebleu.corpus_bleu(hypotheses, [references]).score, 2), rule
        assert values["bleu"]["oracle"] >= values["bleu"][rule]
        if rule == values["selection"]:
            # The length oracle by hand: of each sentence's ranked candidates the first whose
            # length in target pieces is closest to the reference's.
            target = run.tokenizers()[1]
            size = lambda text: len(target.tokenize(tf.constant([text])).numpy()[0])  # noqa: E731
            every = Translator(model, *run.tokenizers(), dataclasses.replace(config, n_best=5),
                               run.model.max_length, load_rescorer(config, run))
            picked = [min(n, key=lambda c: abs(size(c[0]) - size(r)))[0]
                      for n, r in zip(every.translate(sources), references)]
            assert values["bleu"]["length_oracle"] == round(
                sacrebleu.corpus_bleu(picked, [references]).score, 2)
    # The rescorer's own beam of 5: its 1-best is the teacher's translation with that beam.
    teacher = runs.load(config.rescore_run)
    beam = resolve_method(DecodeConfig(beam_size=5, length_penalty=None), teacher)
    assert values["rescorer_beam"]["length_penalty"] == beam.length_penalty
    hypotheses = [n[0][0] for n in Translator(load_rescorer(config, run), *teacher.tokenizers(),
                                              beam, teacher.model.max_length).translate(sources)]
    assert values["rescorer_beam"]["bleu"] == round(
        sacrebleu.corpus_bleu(hypotheses, [references]).score, 2)
    assert values["rescorer_beam"]["oracle"] >= values["rescorer_beam"]["bleu"]
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "error: nat_candidates needs a non-autoregressive run" in bad.stderr


def test_analyze_heatmaps_for_an_at_and_a_nat_model(nart_run, trained_run, tmp_path):
    import json

    run, _ = nart_run
    png, result = tmp_path / "maps.png", tmp_path / "maps.json"
    out, bad = run_modules(
        ("tfnmt.analyze", "--mode=heatmaps",
         f"--runs=at={trained_run.run_dir}@latest,nat={run.run_dir}@latest",
         "--sentence=a b c d", f"--output={png}", f"--result={result}"),
        ("tfnmt.analyze", "--mode=heatmaps", f"--runs={run.run_dir}@latest", "--sentence=a",
         f"--output={tmp_path / 'bad.png'}", "--head=5"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    values = json.loads(result.read_text())["values"]
    assert set(values["translations"]) == {"at", "nat"}
    assert bad.returncode == 1 and "is out of range" in bad.stderr


def test_repeated_token_rate_by_hand(tmp_path):
    from tfnmt.evaluation.analysis import repeated_token_rate

    assert repeated_token_rate(["a a b", "c d d d", ""]) == 100.0 * 3 / 7
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("x x y\n")
    out = run_module("tfnmt.analyze", "--mode=repeats", f"--hypothesis={hyp}")
    assert out.returncode == 0 and '"repeated_tokens_percent": 33.33' in out.stdout


def test_a_teacher_with_another_vocabulary_is_refused(tmp_path, multi30k_sample, trained_run):
    task = {"train.src": multi30k_sample["en"], "train.tgt": multi30k_sample["de"],
            "vocab": multi30k_sample["vocab"]}
    run = make_run(tmp_path / "kd", task, teacher_run=trained_run.run_dir)
    with pytest.raises(UserError, match=f"the teacher {trained_run.run_dir} uses another "
                                        "vocabulary"):
        Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)


def test_a_mixed_bfloat16_student_runs_its_frozen_teacher_in_bfloat16(tmp_path, reverse_task,
                                                                      trained_run):
    """Beside a mixed-bfloat16 student the frozen teacher is restored in bfloat16 (a hint step
    1.10-1.15x faster on the Multi30k recipe: docs/decisions.md), beside a float32 one in
    float32; the same student's hints from either teacher agree to bfloat16's rounding."""
    from tfnmt.methods.hint_nart import HintBased

    from tests.training.test_trainer import one_batch

    model = ModelConfig.from_shape("tiny", architecture="nart", dropout=0.0)
    teachers = {}
    for precision in ("float32", "mixed_bfloat16"):
        run = make_run(tmp_path / precision, reverse_task, model=model, objective="hint",
                       teacher_run=trained_run.run_dir, teacher_checkpoint="latest",
                       mixed_precision=precision)
        trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
        teachers[precision] = trainer.objective.teacher
        if precision == "float32":
            student, batch = trainer.model, one_batch(run, 16)
    assert teachers["float32"].compute_dtype == "float32"
    assert teachers["mixed_bfloat16"].compute_dtype == "bfloat16"
    assert {v.dtype for v in teachers["mixed_bfloat16"].weights} == {"bfloat16"}
    hints = {p: HintBased(t).terms(student, batch, training=False)[1:3]
             for p, t in teachers.items()}
    for ours, theirs in zip(hints["mixed_bfloat16"], hints["float32"]):
        assert float(tf.reduce_sum(theirs)) > 0
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=0.05, atol=1e-3)
