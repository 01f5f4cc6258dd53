"""HRT and mask-predict decoding through the shared Translator, the CLI and SavedModels."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig, ModelConfig
from tfnmt.decoding.iterative import (hybrid_regressive_decode, mask_predict,
                                      mask_predict_lengths, mask_predict_widths)
from tfnmt.inference.translator import (resolve_method, StagedMaskPredict, static_limit,
                                        Translator)
from tfnmt.serving.saved_model import export_run
from tfnmt.training.trainer import Trainer

from tests.conftest import make_run, run_module
from tests.serving.test_saved_model import (assert_export_matches, shortlisted_copy,
                                            SHORTLIST_TEXTS)

HRT = DecodeConfig(method="hrt", hrt_chunk=2, beam_size=3, n_nat=2, length_penalty=0.0,
                   batch_size=5)


def sentences(task, n=12):
    return open(task["test.src"], encoding="utf-8").read().splitlines()[:n]


@pytest.fixture(scope="module")
def cmlm_run(tmp_path_factory, reverse_task):
    model = ModelConfig.from_shape("tiny", architecture="cmlm", dropout=0.0, max_length=16)
    run = make_run(tmp_path_factory.mktemp("runs") / "cmlm", reverse_task, model=model,
                   train_steps=40, objective="cmlm", learning_rate=5e-3)
    Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train()
    return run


def test_each_run_decodes_its_own_way(trained_run, cmlm_run, tmp_path, reverse_task):
    auto = DecodeConfig(method="auto")
    assert resolve_method(auto, trained_run).method == "autoregressive"
    assert resolve_method(auto, cmlm_run).method == "mask_predict"
    hrt = make_run(tmp_path / "hrt", reverse_task, objective="hrt", hrt_chunk=3)
    resolved = resolve_method(auto, hrt)
    assert (resolved.method, resolved.hrt_chunk) == ("hrt", 3)
    # An explicit choice wins over the run's.
    assert resolve_method(DecodeConfig(method="autoregressive"), hrt).method == "autoregressive"


def test_unset_decoding_settings_take_each_papers_defaults(tmp_path, reverse_task):
    unset = DecodeConfig(method="auto", beam_size=None, length_penalty=None,
                         length_halfwidth=None)

    def resolved(name, architecture="transformer", **train):
        model = ModelConfig.from_shape("tiny", architecture=architecture, dropout=0.0)
        config = resolve_method(unset, make_run(tmp_path / name, reverse_task, model=model,
                                                **train))
        return config.method, config.beam_size, config.length_penalty, config.length_halfwidth

    assert resolved("at") == ("autoregressive", 4, 0.6, 0)
    assert resolved("hybrid", "hybrid") == ("autoregressive", 12, 1.0, 0)  # Hybrid paper
    assert resolved("hrt", objective="hrt") == ("hrt", 5, 0.6, 0)           # b_at = 5
    assert resolved("lpd", "imitate_nat")[3] == 3                          # LPD delta T = 3
    assert resolved("nart", "nart")[3] == 0
    # A value the user gave is kept.
    run = make_run(tmp_path / "at", reverse_task)
    given = resolve_method(DecodeConfig(method="auto", beam_size=2, length_penalty=None), run)
    assert (given.beam_size, given.length_penalty) == (2, 0.6)


@pytest.mark.parametrize("xla", [False, True])
def test_translator_hrt_equals_the_two_stage_decoder_called_directly(trained_run, reverse_task,
                                                                      xla):
    model, _ = runs.restore_model(trained_run, "latest")
    src, tgt = trained_run.tokenizers()
    translator = Translator(model, src, tgt, dataclasses.replace(HRT, xla=xla),
                            trained_run.model.max_length)
    texts = sentences(reverse_task)
    got = translator.translate(texts)
    encoded = translator.encode(texts)
    mask_id, bos2 = tgt.piece_id("<mask>"), tgt.piece_id("<bos_2>")
    assert mask_id != bos2 and min(mask_id, bos2) > 3
    for index, source in translator.batches(encoded):
        width = source.shape[1]
        max_length = min(int(np.floor(1.5 * width + 10)), trained_run.model.max_length)
        from tfnmt.data.pipeline import bucket_length

        out = hybrid_regressive_decode(model, tf.constant(source),
                                       bucket_length(max_length, trained_run.model.max_length),
                                       2, mask_id, bos2, beam_size=3, n_nat=2)
        for row, i in enumerate(index):
            n = int(out["lengths"][row, 0])
            expected = tgt.detokenize(out["ids"][row:row + 1, 0, :n]).numpy()[0].decode()
            assert got[i][0][0] == expected
            assert abs(got[i][0][1] - float(out["scores"][row, 0])) < 1e-4


def test_mask_predict_is_the_same_with_and_without_xla(cmlm_run, reverse_task):
    model, _ = runs.restore_model(cmlm_run, "latest")
    src, tgt = cmlm_run.tokenizers()
    config = resolve_method(DecodeConfig(method="auto", iterations=3, length_beam=2), cmlm_run)
    outputs = [Translator(model, src, tgt, dataclasses.replace(config, xla=xla),
                          cmlm_run.model.max_length).translate(sentences(reverse_task))
               for xla in (False, True)]
    assert [o[0][0] for o in outputs[0]] == [o[0][0] for o in outputs[1]]
    np.testing.assert_allclose([o[0][1] for o in outputs[0]], [o[0][1] for o in outputs[1]],
                               rtol=1e-4)
    # One iteration through the translator is the library's mask_predict with I = 1.
    translator = Translator(model, src, tgt, dataclasses.replace(config, iterations=1, xla=False),
                            cmlm_run.model.max_length)
    index, source = next(translator.batches(translator.encode(sentences(reverse_task))))
    direct = mask_predict(model, tf.constant(source), tgt.piece_id("<mask>"), 1, 2,
                          int(translator.decode_fn(tf.constant(source))["ids"].shape[-1]))
    np.testing.assert_array_equal(translator.translate_ids(source)["ids"].numpy(),
                                  direct["ids"].numpy())


def test_staged_mask_predict_equals_the_one_program_form(cmlm_run, reverse_task):
    """Under XLA the translator runs mask-predict as two programs, the width chosen on the
    host; the one program that branches over every width (what a SavedModel holds) decodes
    the same, batch by batch, and only the widths the batches need were compiled."""
    model, _ = runs.restore_model(cmlm_run, "latest")
    src, tgt = cmlm_run.tokenizers()
    config = resolve_method(DecodeConfig(method="auto", iterations=3, length_beam=3,
                                         batch_size=4, xla=True), cmlm_run)
    translator = Translator(model, src, tgt, config, cmlm_run.model.max_length)
    assert isinstance(translator._decode, StagedMaskPredict)
    needed = set()
    for _, source in translator.batches(translator.encode(sentences(reverse_task, 24))):
        staged, one = translator.translate_ids(source), translator.decode_fn(tf.constant(source))
        np.testing.assert_array_equal(staged["ids"].numpy(), one["ids"].numpy())
        np.testing.assert_array_equal(staged["lengths"].numpy(), one["lengths"].numpy())
        np.testing.assert_allclose(staged["scores"].numpy(), one["scores"].numpy(), rtol=1e-5)
        limit = static_limit(config, source.shape[1], cmlm_run.model.max_length)
        widths = mask_predict_widths(config.length_beam, limit)
        longest = int(_candidate_lengths(model, source, config, limit).sum(1).max())
        needed.add((source.shape, next((w for w in widths if w >= longest), widths[-1])))
    assert translator._decode._fill.experimental_get_tracing_count() == len(needed)


def _candidate_lengths(model, source, config, limit):
    return mask_predict_lengths(model, tf.constant(source), config.length_beam, limit)[2].numpy()


@pytest.mark.parametrize("which", ["hrt", "cmlm"])
def test_hrt_and_mask_predict_export_and_match(which, trained_run, cmlm_run, reverse_task,
                                               tmp_path):
    run = trained_run if which == "hrt" else cmlm_run
    config = HRT if which == "hrt" else DecodeConfig(method="auto", iterations=3, length_beam=2)
    version_dir = export_run(run.run_dir, str(tmp_path / which), "latest", config)
    assert_export_matches(version_dir, run, resolve_method(config, run),
                          sentences(reverse_task, 6))


def test_hrt_over_a_shortlist_exports_and_matches(trained_run, tmp_path, monkeypatch):
    """--shortlist with HRT (Skip-AT beam and Skip-CMLM fill over the union): the SavedModel,
    which computes the union in its graph, translates as the run does in process."""
    run, lists = shortlisted_copy(trained_run, tmp_path / "run", monkeypatch)
    config = dataclasses.replace(HRT, shortlist=True)
    version_dir = export_run(run.run_dir, str(tmp_path / "export"), "latest", config)
    assert_export_matches(version_dir, run, resolve_method(config, run), SHORTLIST_TEXTS,
                          shortlist=lists)


def test_cli_refuses_mask_predict_without_a_length_predictor(trained_run, reverse_task):
    result = run_module("tfnmt.translate", f"--run_dir={trained_run.run_dir}",
                        "--checkpoint=latest", f"--input={reverse_task['test.src']}",
                        "--method=mask_predict")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: mask_predict needs a model with a length predictor" in result.stderr


def test_cli_refuses_n_best_with_hrt(trained_run, reverse_task):
    result = run_module("tfnmt.translate", f"--run_dir={trained_run.run_dir}",
                        "--checkpoint=latest", f"--input={reverse_task['test.src']}",
                        "--method=hrt", "--hrt_chunk=2", "--n_best=2")
    assert result.returncode == 1
    assert "error: hrt decoding returns one hypothesis; n_best must be 1." in result.stderr


def unmarked_for_clusters(graph_def, kinds):
    """Names of the `kinds` ops, in the graph and in every function it calls (cond branches,
    while bodies), that --xla_elementwise's auto-clustering may still take."""
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    # Float work only: tf.while_loop adds its own int32 loop counter to the body.
    floats = {tf.float32.as_datatype_enum, tf.bfloat16.as_datatype_enum}
    ops = [n for n in nodes if n.op in kinds and n.attr["T"].type in floats]
    assert len(ops) > 20
    return [n.name for n in ops if not ("_XlaCompile" in n.attr and not n.attr["_XlaCompile"].b)]


@pytest.mark.parametrize("which", ["cmlm", "beam"])
def test_decoding_without_xla_is_left_out_of_element_wise_clusters(which, trained_run, cmlm_run,
                                                                   reverse_task):
    """A --xla_elementwise process clusters every graph not compiled whole; with mask-predict
    clustered, a bfloat16 CMLM's first validation took about 470 s, without about 215 s
    (docs/decisions.md). The plain decode function marks every op, down to
    its bucket branches and loop bodies, not to be clustered; the XLA one is compiled whole."""
    run = cmlm_run if which == "cmlm" else trained_run
    model, _ = runs.restore_model(run, "latest")
    src, tgt = run.tokenizers()
    config = resolve_method(DecodeConfig(method="auto", iterations=2, length_beam=2,
                                         beam_size=3), run)
    kinds = {"MatMul", "BatchMatMulV2", "BatchMatMulV3", "Softmax", "Mul", "AddV2", "ArgMax"}
    for xla in (False, True):
        translator = Translator(model, src, tgt, dataclasses.replace(config, xla=xla),
                                run.model.max_length)
        source = tf.constant(next(translator.batches(translator.encode(
            sentences(reverse_task))))[1])
        graph_def = translator.decode_fn.get_concrete_function(source).graph.as_graph_def()
        assert len(graph_def.library.function) > 1   # branches or a loop body: nested graphs
        unmarked = unmarked_for_clusters(graph_def, kinds)
        if xla:
            assert len(unmarked) > 20   # the test can fail: nothing marks the compiled one
        else:
            assert not unmarked, unmarked[:5]
