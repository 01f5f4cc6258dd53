"""CTranslate2 export: per-token log-probabilities and greedy outputs equal tfnmt's, the CLI
writes numbered versions (float32 and int8), other architectures are refused in one sentence."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig, ModelConfig
from tfnmt.core.errors import UserError
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.decoding import search
from tfnmt.inference.translator import Translator
from tfnmt.models import build_model, named_weights
from tfnmt.serving import ctranslate2_export

from tests.conftest import make_run, run_module

ctranslate2 = pytest.importorskip("ctranslate2")

SENTENCES = 20
TOLERANCE = 1e-4


def lines(path, count=SENTENCES):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()[:count]


def token_ids(tokenizer, sentences):
    """Sentences -> lists of ids ending with EOS, as tfnmt feeds them."""
    return [list(row) + [EOS_ID] for row in tokenizer.tokenize(tf.constant(sentences)).numpy()]


def padded(rows):
    out = np.full([len(rows), max(map(len, rows))], PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return tf.constant(out)


def tfnmt_log_probs(model, source_ids, target_ids):
    """Per-token log P(y_t | y_<t, x) of tfnmt's teacher-forced pass (one padded batch)."""
    logits = model({"source": padded(source_ids), "target": padded(target_ids)})
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32)).numpy()
    return [log_probs[i, np.arange(len(row)), row] for i, row in enumerate(target_ids)]


def max_score_difference(model, ct2_dir, source_tok, target_tok, sources, targets):
    """Largest |tfnmt - CTranslate2| per-token log-probability over the pairs; CTranslate2 gets
    the pieces without "</s>" (the model's config appends it to sources; score_batch scores it
    on targets)."""
    source_ids, target_ids = token_ids(source_tok, sources), token_ids(target_tok, targets)
    expected = tfnmt_log_probs(model, source_ids, target_ids)
    translator = ctranslate2.Translator(ct2_dir, device="cpu", compute_type="float32")
    results = translator.score_batch([source_tok.pieces(ids[:-1]) for ids in source_ids],
                                     [target_tok.pieces(ids[:-1]) for ids in target_ids])
    worst = 0.0
    for mine, result, ids in zip(expected, results, target_ids):
        assert result.tokens == target_tok.pieces(ids)  # ... "</s>" scored last
        worst = max(worst, float(np.max(np.abs(mine - np.array(result.log_probs)))))
    return worst


@pytest.fixture(scope="module")
def converted(tmp_path_factory, trained_run):
    """The trained run's latest checkpoint as a float32 CTranslate2 model directory."""
    out = str(tmp_path_factory.mktemp("ct2") / "model")
    ctranslate2_export.convert(trained_run, "latest", out)
    return out


def test_log_probs_equal_tfnmt_on_real_sentences(converted, trained_run, reverse_task):
    model, _ = runs.restore_model(trained_run, "latest")
    worst = max_score_difference(model, converted, *trained_run.tokenizers(),
                                 lines(reverse_task["test.src"]), lines(reverse_task["test.tgt"]))
    print(f"max per-token log-prob difference: {worst:.2e}")
    assert worst < TOLERANCE


@pytest.mark.parametrize("variant", [
    dict(pre_norm=False, tie_output=False, share_embeddings=False),
    dict(pre_norm=True, tie_output=False, share_embeddings=True),
    dict(pre_norm=False, tie_output=True, share_embeddings=False),
], ids=["post-untied-separate", "pre-untied-shared", "post-tied-separate"])
def test_every_layout_converts(tmp_path, trained_run, reverse_task, variant):
    """Post-norm, untied output (with bias), separate embeddings, 2 encoder layers, 4 heads:
    random weights, every one perturbed so that no bias or layer norm stays 0 or 1."""
    source_tok, target_tok = trained_run.tokenizers()
    config = ModelConfig(d_model=32, ffn_dim=48, num_heads=4, encoder_layers=2, decoder_layers=1,
                         dropout=0.0, vocab_size=source_tok.vocab_size, max_length=64, **variant)
    model = build_model(config)
    rng = np.random.default_rng(0)
    for weight in named_weights(model).values():
        weight.assign(weight + rng.normal(0.0, 0.2, weight.shape).astype(np.float32))
    spec = ctranslate2_export.build_spec(model, source_tok, target_tok)
    spec.validate()
    spec.optimize()
    spec.save(str(tmp_path))
    worst = max_score_difference(model, str(tmp_path), source_tok, target_tok,
                                 lines(reverse_task["test.src"], 8),
                                 lines(reverse_task["test.tgt"], 8))
    print(f"max per-token log-prob difference: {worst:.2e}")
    assert worst < TOLERANCE


def tfnmt_greedy_pieces(run, sentences):
    """tfnmt's greedy translations as piece lists (without EOS)."""
    model, _ = runs.restore_model(run, "latest")
    source_tok, target_tok = run.tokenizers()
    translator = Translator(model, source_tok, target_tok,
                            DecodeConfig(beam_size=1, batch_size=8, xla=False),
                            run.model.max_length)
    pieces = {}
    for index, source in translator.batches(translator.encode(sentences)):
        out = translator.translate_ids(source)
        for row, i in enumerate(index):
            ids = out["ids"][row, 0, :out["lengths"][row, 0]].numpy().tolist()
            pieces[i] = target_tok.pieces([t for t in ids if t != EOS_ID])
    return [pieces[i] for i in range(len(sentences))]


def ct2_greedy_pieces(ct2_dir, run, sentences):
    """CTranslate2's greedy translations with the options that make it decode as tfnmt does,
    one translate_batch per output limit (tfnmt's limit is per sentence)."""
    source_tok, _ = run.tokenizers()
    max_length = run.model.max_length
    sources = [source_tok.pieces(ids[:-1]) for ids in token_ids(source_tok, sentences)]
    translator = ctranslate2.Translator(ct2_dir, device="cpu", compute_type="float32")
    options = ctranslate2_export.decoding_options(max_length)
    groups = {}
    for i, pieces in enumerate(sources):
        groups.setdefault(ctranslate2_export.max_decoding_length(pieces, max_length), []).append(i)
    out = [None] * len(sentences)
    for limit, index in groups.items():
        results = translator.translate_batch([sources[i] for i in index], beam_size=1,
                                             **dict(options, max_decoding_length=limit))
        for i, result in zip(index, results):
            out[i] = result.hypotheses[0]
    return out


def test_greedy_outputs_identical(converted, trained_run, reverse_task):
    sentences = lines(reverse_task["test.src"])
    expected = tfnmt_greedy_pieces(trained_run, sentences)
    got = ct2_greedy_pieces(converted, trained_run, sentences)
    assert got == expected
    assert not any({"<pad>", "<s>"} & set(pieces) for pieces in got)


def test_cli_writes_versions_float32_and_int8(tmp_path, trained_run, reverse_task):
    base = tmp_path / "ct2"
    common = (f"--run_dir={trained_run.run_dir}", "--checkpoint=latest", f"--export_base={base}",
              "--format=ctranslate2")
    for extra, version in (((), "1"), (("--quantization=int8",), "2")):
        result = run_module("tfnmt.export", *common, *extra)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == f"exported {base / version}"
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary directory left
    for version in ("1", "2"):
        files = set(os.listdir(base / version))
        assert {"model.bin", "config.json", "source.model", "target.model",
                "tfnmt.json"} <= files, files
        for side, path in (("source", trained_run.source_vocab),
                           ("target", trained_run.target_vocab)):
            assert (base / version / f"{side}.model").read_bytes() == open(path, "rb").read()
    config = json.loads((base / "1" / "config.json").read_text())
    assert config["layer_norm_epsilon"] == 1e-5 and config["add_source_eos"] is True
    assert config["decoder_start_token"] == "<s>" and config["eos_token"] == "</s>"
    metadata = json.loads((base / "2" / "tfnmt.json").read_text())
    assert metadata["quantization"] == "int8" and metadata["checkpoint"].endswith("ckpt-60")
    assert (base / "2" / "model.bin").stat().st_size < (base / "1" / "model.bin").stat().st_size

    source_tok, _ = trained_run.tokenizers()
    sources = [source_tok.pieces(ids[:-1])
               for ids in token_ids(source_tok, lines(reverse_task["test.src"], 4))]
    int8 = ctranslate2.Translator(str(base / "2"), device="cpu", compute_type="int8")
    results = int8.translate_batch(sources, beam_size=1, max_decoding_length=20,
                                   **{k: v for k, v in ctranslate2_export.decoding_options(
                                       trained_run.model.max_length).items()
                                      if k != "max_decoding_length"})
    assert len(results) == 4 and all(r.hypotheses[0] for r in results)


def test_other_architectures_are_refused_in_one_sentence(tmp_path, reverse_task):
    run = make_run(tmp_path / "cmlm", reverse_task,
                   model=ModelConfig.from_shape("tiny", architecture="cmlm", dropout=0.0),
                   objective="cmlm")
    with pytest.raises(UserError) as error:
        ctranslate2_export.export_run(run.run_dir, str(tmp_path / "export"), "latest")
    message = str(error.value)
    assert "'cmlm'" in message and "transformer" in message
    assert message.endswith(".") and ". " not in message and "\n" not in message
    assert not (tmp_path / "export").exists()  # refused before anything is written


def test_missing_package_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import ctranslate2 -> ImportError
    with pytest.raises(UserError, match=r"pip install ctranslate2"):
        ctranslate2_export.import_ctranslate2()


def test_side_by_side_times_the_same_computation_on_both(tmp_path):
    """The forced-length protocol: on the same random weights, tfnmt and CTranslate2 emit the
    same greedy tokens for every forced step but tfnmt's last (its forced EOS); the cells carry
    both speeds and peak RSS, CTranslate2's from a child without TensorFlow."""
    from tfnmt.evaluation import side_by_side

    model_dir = str(tmp_path / "ct2")
    side_by_side.convert_random("tiny", model_dir)
    model = side_by_side.random_model("tiny")
    ids = side_by_side.sources(3)
    source = tf.concat([tf.constant(ids, tf.int32), tf.fill([3, 1], EOS_ID)], axis=1)
    steps = side_by_side.STEPS
    mine = search.decode(model, source, steps, 1, 1.0, max_length_a=0.0, max_length_b=steps,
                           min_length=steps)["ids"].numpy()[:, 0]
    vocabulary = side_by_side.SyntheticVocabulary(side_by_side.VOCAB_SIZE)
    translator = ctranslate2.Translator(model_dir, device="cpu", compute_type="float32")
    theirs = translator.translate_batch(
        [vocabulary.pieces(row.tolist()) for row in ids], beam_size=1,
        min_decoding_length=steps, max_decoding_length=steps,
        suppress_sequences=[["<pad>"], ["<s>"]])
    for row, result in zip(mine, theirs):
        assert row[-1] == EOS_ID and len(result.hypotheses[0]) == steps
        assert vocabulary.pieces(row[:-1].tolist()) == result.hypotheses[0][:-1]
    cells = side_by_side.side_by_side(["tiny"], batches=(2,), beams=(2,),
                                      compute_types=("int8",), threads=(1,), repeats=1,
                                      log=lambda line: None,
                                      tfnmt_configs=("float32_xla", "int8_xla"))
    assert [(c["shape"], c["batch"], c["beam"]) for c in cells] == [("tiny", 2, 2)]
    cell = cells[0]
    assert set(cell["ctranslate2"]) == {"int8_1thr"}
    assert set(cell["tfnmt"]) == {"float32_xla", "int8_xla"}
    assert cell["tfnmt_tokens_per_second"] == max(cell["tfnmt"].values()) > 0
    assert cell["tfnmt"][cell["tfnmt_best"]] == cell["tfnmt_tokens_per_second"]
    assert cell["tfnmt_over_best_ctranslate2"] == round(
        cell["tfnmt_tokens_per_second"] / cell["ctranslate2"]["int8_1thr"], 2)
    assert cell["ctranslate2"]["int8_1thr"] > 0
    assert cell["tfnmt_peak_rss_mb"] > cell["ctranslate2_peak_rss_mb"] > 0  # TF vs no TF
    alone = side_by_side.in_child("ct2_timing", "time_ctranslate2", model_dir=model_dir,
                                  batch=1, beam=1, compute_type="float32", threads=1,
                                  repeats=1)
    assert alone["tensorflow_loaded"] is False  # its peak RSS is CTranslate2's own
    threads = [side_by_side.in_child("side_by_side", "time_tfnmt", shape="tiny", batch=1, beam=1,
                                     repeats=1, threads=count)["intra_op_threads"]
               for count in (0, 1)]
    assert threads == [0, 1]  # the _1thr configurations' children decode with one thread
    assert "| tiny | 2 | 2 |" in side_by_side.markdown(cells)
    assert "tfnmt int8_xla" in side_by_side.markdown(cells)


def test_benchmark_rows_of_ctranslate2_translate_as_tfnmt_greedy(trained_run, reverse_task):
    """Speed-mode CTranslate2 rows: the converted run, the same sentences; float32 greedy
    outputs equal tfnmt's at batch 1 (where the batch's output limit is the sentence's own),
    so their BLEU does too."""
    import sacrebleu

    from tfnmt.evaluation.side_by_side import ctranslate2_rows

    sentences = lines(reverse_task["test.src"])
    references = lines(reverse_task["test.tgt"])
    rows = ctranslate2_rows(trained_run, "latest", "tiny", sentences, references, [1], [1],
                            1.0, ["float32", "int8"], [1], 1)
    assert [r["decoding"] for r in rows] == ["CTranslate2 float32 1thr greedy",
                                             "CTranslate2 int8 1thr greedy"]
    assert all(r["seconds"] > 0 and r["batch"] == 1 and r["xla"] is None for r in rows)
    model, _ = runs.restore_model(trained_run, "latest")
    mine = Translator(model, *trained_run.tokenizers(), DecodeConfig(beam_size=1, batch_size=4),
                      trained_run.model.max_length).translate(sentences)
    expected = sacrebleu.corpus_bleu([n[0][0] for n in mine], [references]).score
    assert rows[0]["bleu"] == round(expected, 2)
