"""Exports: fresh-process equality, saved_model_cli, op check, edge inputs, versioning."""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.inference.translator import Translator
from tfnmt.serving import saved_model
from tfnmt.serving.saved_model import export_run

from tests.conftest import REPO, run_module, run_modules

CONFIG = DecodeConfig(beam_size=3, n_best=2, length_penalty=0.6)

# Runs in a fresh interpreter that imports only tensorflow and tensorflow_text.
LOADER = textwrap.dedent("""
    import base64, json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    loaded = tf.saved_model.load(sys.argv[1])
    request = json.loads(sys.stdin.read())
    out = {}
    for name, kwargs in request.items():
        fn = loaded.signatures[name.split(":")[0]]
        args = {k: tf.constant([base64.b64decode(x) for x in v], tf.string) if k == "sentences"
                else tf.constant(v, tf.int32) for k, v in kwargs.items()}
        result = fn(**args)
        out[name] = {k: [base64.b64encode(x).decode() for x in v.numpy().tolist()]
                     if v.dtype == tf.string else v.numpy().tolist() for k, v in result.items()}
    assert not [m for m in sys.modules if m.startswith("tfnmt")]
    print(json.dumps(out))
""")


def fresh_process(version_dir, request, timeout=300):
    result = subprocess.run([sys.executable, "-c", LOADER, version_dir], input=json.dumps(request),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_export_matches(version_dir, run, config, texts, rescorer=None,
                          names=("translate", "translate_plain"), shortlist=None):
    """The SavedModel, loaded by a TF-only process, translates `texts` exactly as the run's
    latest checkpoint does in process with `config` (already resolved for the run; with
    config.shortlist, over the run's `shortlist`, whose union must leave ids out)."""
    import dataclasses

    model, _ = runs.restore_model(run, "latest", config.precision)
    src, tgt = run.tokenizers()
    translator = Translator(model, src, tgt, dataclasses.replace(config, batch_size=64),
                            run.model.max_length, rescorer, shortlist)
    if config.shortlist:
        for _, source in translator.batches(translator.encode(texts)):
            assert len(translator.vocab_ids(source)) < run.model.output_vocab_size
    expected = translator.translate(texts)
    got = fresh_process(version_dir, {name: {"sentences": encode(texts)} for name in names})
    for name in names:
        assert decode_strings(got[name]["translations"]) == [e[0][0] for e in expected], name
        np.testing.assert_allclose(got[name]["scores"], [e[0][1] for e in expected], rtol=1e-4)
    return expected


# Sentences over a few of the reverse task's letters: their shortlist union is a strict subset.
SHORTLIST_TEXTS = ["a b c", "c a b a", "b b c a d", "d a", "a c"]


def shortlisted_copy(run, run_dir, monkeypatch, per_source=1, frequent=1):
    """A copy of `run` at `run_dir` with a shortlist.npz from its training pairs (what
    python -m tfnmt.shortlist writes); unions padded to 4 * 2^k ids instead of 256 * 2^k, so
    the reverse task's 24-piece vocabulary has sizes below V. Returns (run, lists)."""
    from tfnmt.data import corpus, shortlist

    monkeypatch.setattr(shortlist, "BUCKET", 4)
    shutil.copytree(run.run_dir, run_dir)
    copied = runs.load(str(run_dir))
    src, tgt = copied.tokenizers()

    def tokens(tokenizer, path):
        return tokenizer.tokenize(tf.constant(corpus.read_lines(path))).to_list()

    lists = shortlist.build(tokens(src, copied.data.train_source),
                            tokens(tgt, copied.data.train_target), src.vocab_size, per_source,
                            frequent)
    shortlist.save(str(run_dir), lists)
    return copied, shortlist.load(str(run_dir))


def encode(sentences):
    return [base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()
            for s in sentences]


def decode_strings(values):
    return [base64.b64decode(v).decode("utf-8") for v in values]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_run):
    base = tmp_path_factory.mktemp("export") / "tiny"
    return export_run(trained_run.run_dir, str(base), "latest", CONFIG), trained_run


def test_fresh_process_matches_in_process_model(exported, reverse_task):
    version_dir, run = exported
    sentences = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:9]
    model, _ = runs.restore_model(run, "latest")
    src, tgt = run.tokenizers()
    expected = Translator(model, src, tgt, DecodeConfig(**{**vars(CONFIG), "batch_size": 64}),
                          run.model.max_length).translate(sentences)
    ids = [src.tokenize(tf.constant([s])).to_list()[0] for s in sentences]
    width = max(map(len, ids))
    padded = [row + [0] * (width - len(row)) for row in ids]
    got = fresh_process(version_dir, {
        "translate": {"sentences": encode(sentences)},
        "translate_plain": {"sentences": encode(sentences)},
        "serving_default": {"sentences": encode(sentences)},
        "translate_ids": {"ids": padded, "lengths": [len(r) for r in ids]}})
    for name in ("translate", "translate_plain", "serving_default"):
        assert decode_strings(got[name]["translations"]) == [e[0][0] for e in expected], name
        np.testing.assert_allclose(got[name]["scores"], [e[0][1] for e in expected], rtol=1e-5)
    n_best = got["translate_ids"]
    for i, e in enumerate(expected):
        for k in range(2):
            n = n_best["lengths"][i][k]
            text = tgt.detokenize(tf.constant([n_best["ids"][i][k][:n]])).numpy()[0].decode()
            assert text == e[k][0]
            np.testing.assert_allclose(n_best["scores"][i][k], e[k][1], rtol=1e-5)


def test_edge_inputs_give_defined_results(exported):
    version_dir, run = exported
    cases = ["", "   ", " ".join(["a"] * 2000), b"a \xff\xfe b \xc3", "b",
             " ".join(["c d"] * 40)]
    got = fresh_process(version_dir, {"translate": {"sentences": encode(cases)},
                                      "translate_plain": {"sentences": encode(cases)},
                                      "translate:empty": {"sentences": []},
                                      "translate_plain:empty": {"sentences": []}})
    for name in ("translate", "translate_plain"):
        assert len(got[name]["translations"]) == len(cases)
        assert np.isfinite(got[name]["scores"]).all()
        assert decode_strings(got[name]["translations"]) == decode_strings(
            got["translate"]["translations"])
    for name in ("translate:empty", "translate_plain:empty"):
        assert got[name] == {"scores": [], "translations": []}
    # The 2,000-token sentence is truncated to the exported maximum input length.
    assert saved_model.load_metadata(version_dir)["max_input_tokens"] == run.model.max_length - 1


def test_saved_model_cli_shows_and_runs(exported):
    version_dir, _ = exported
    show, run = run_modules(
        ("tfnmt.saved_model_cli", "show", "--dir", version_dir, "--all"),
        ("tfnmt.saved_model_cli", "run", "--dir", version_dir, "--tag_set", "serve",
         "--signature_def", "translate", "--input_exprs", 'sentences=["a b c", "d e"]'))
    assert show.returncode == 0, show.stderr[-2000:]
    for name in ("serving_default", "translate", "translate_plain", "translate_ids"):
        assert f"signature_def['{name}']" in show.stdout
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Result for output key translations" in run.stdout


def test_op_check_passes_and_catches_python_ops(exported, tmp_path):
    version_dir, _ = exported
    assert saved_model.unservable_ops(version_dir) == {}
    assert "SentencepieceTokenizeOp" in saved_model.graph_ops(version_dir)

    class Planted(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, x):
            return {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}

    module = Planted()
    tf.saved_model.save(module, str(tmp_path / "planted"),
                        signatures={"serving_default": module.serve.get_concrete_function()})
    assert set(saved_model.unservable_ops(str(tmp_path / "planted"))) == {"EagerPyFunc"}


def test_new_versions_leave_old_ones_intact(exported):
    version_dir, run = exported
    base = os.path.dirname(version_dir)
    before = open(os.path.join(version_dir, "saved_model.pb"), "rb").read()
    second = export_run(run.run_dir, base, "latest", CONFIG)
    assert os.path.basename(second) == str(int(os.path.basename(version_dir)) + 1)
    assert open(os.path.join(version_dir, "saved_model.pb"), "rb").read() == before


def test_export_killed_midway_leaves_no_version(tmp_path, trained_run):
    base = tmp_path / "models"
    proc = subprocess.Popen([sys.executable, "-m", "tfnmt.export", f"--run_dir={trained_run.run_dir}",
                             "--checkpoint=latest", f"--export_base={base}"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (base.exists() and os.listdir(base)):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.listdir(base), "the export never started"
    assert not [d for d in os.listdir(base) if d.isdigit()]
    # The next export still works, is version 1, and cleans what the killed one left.
    assert os.path.basename(export_run(trained_run.run_dir, str(base), "latest", CONFIG)) == "1"
    assert os.listdir(base) == ["1"]


def test_versions_are_readable_by_others_and_not_nested(exported, tmp_path):
    import stat

    from tfnmt.core.errors import UserError

    version_dir, run = exported
    umask = os.umask(0o022)
    os.umask(umask)
    mode = stat.S_IMODE(os.stat(version_dir).st_mode)
    assert mode == 0o777 & ~umask, oct(mode)  # not mkdtemp's 0700
    with pytest.raises(UserError, match="looks like a version directory"):
        export_run(run.run_dir, version_dir, "latest", CONFIG)


def test_export_flags_are_checked(tmp_path, trained_run):
    result = run_module("tfnmt.export", f"--run_dir={trained_run.run_dir}", "--checkpoint=latest",
                        f"--export_base={tmp_path}", "--beam_size=2", "--n_best=3")
    assert result.returncode == 1 and "error: need 1 <= n_best <= beam_size" in result.stderr


def test_standalone_savedmodel_script_translates_and_times(exported, reverse_task, tmp_path):
    version_dir, run = exported
    sentences = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:10]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(sentences) + "\n")
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "export", "savedmodel_translate.py"),
         f"--model={version_dir}", f"--input={source}", f"--output={tmp_path / 'out.txt'}",
         "--batch_size=4", f"--timing={tmp_path / 'timing.json'}", "--batch_sizes=1,4"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    model, _ = runs.restore_model(run, "latest")
    src, tgt = run.tokenizers()
    # Same batches as the script (4 sentences, in file order) in process.
    translator = Translator(model, src, tgt, DecodeConfig(**{**vars(CONFIG), "batch_size": 4}),
                            run.model.max_length)
    expected = []
    for start in range(0, 10, 4):
        expected += [n[0][0] for n in translator.translate(sentences[start:start + 4])]
    assert (tmp_path / "out.txt").read_text().splitlines() == expected
    record = json.loads((tmp_path / "timing.json").read_text())
    assert record["kind"] == "serving_benchmark"
    assert [(r["signature"], r["batch"]) for r in record["values"]["rows"]] == [
        ("translate", 1), ("translate", 4), ("translate_plain", 1), ("translate_plain", 4)]


@pytest.mark.parametrize("architecture", ["hybrid", "rnmt"])
def test_recurrent_decoder_models_export_and_match(tmp_path, reverse_task, architecture):
    """A GRU-decoder model goes through the same export path; the SavedModel loaded by a
    TF-only process translates exactly as the in-process model does."""
    from tfnmt.core.config import ModelConfig
    from tfnmt.training.trainer import Trainer

    from tests.conftest import make_run

    model_config = ModelConfig.from_shape("tiny", architecture=architecture,
                                          attention="multihead" if architecture == "hybrid"
                                          else "additive", decoder_hidden=32, dropout=0.0)
    run = make_run(tmp_path / architecture, reverse_task, model=model_config, train_steps=40,
                   learning_rate=5e-3)
    Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train()
    version_dir = export_run(run.run_dir, str(tmp_path / "export"), "latest", CONFIG)
    metadata = json.load(open(os.path.join(version_dir, "assets.extra", "tfnmt.json")))
    assert metadata["architecture"] == architecture
    sentences = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:6]
    assert_export_matches(version_dir, run, CONFIG, sentences)


def test_an_int8_export_translates_as_int8_in_process(trained_run, reverse_task, tmp_path):
    """The signatures are traced with the batch size unknown: the int8 output product must keep
    the vocabulary size static there (it lost it, and the export failed with a traceback)."""
    import dataclasses

    config = dataclasses.replace(CONFIG, precision="int8")
    version_dir = export_run(trained_run.run_dir, str(tmp_path / "int8"), "latest", config)
    sentences = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:6]
    assert_export_matches(version_dir, trained_run, config, sentences)


def test_warmup_requests_cover_every_batch_size_and_input_width(exported, tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    from tfnmt.data.pipeline import bucket_length, padded_lengths

    version_dir, run = exported
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 4 }\nallowed_batch_sizes: 1\n"
                        "allowed_batch_sizes: 4\n")
    version = export_run(run.run_dir, os.path.dirname(version_dir), "latest", CONFIG,
                         str(batching))
    source, _ = run.tokenizers()
    shapes = []
    for record in tf.data.TFRecordDataset(os.path.join(version, saved_model.WARMUP)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        sentences = tf.make_ndarray(request.inputs["sentences"])
        tokens = [len(row) + 1 for row in source.tokenize(tf.constant(sentences)).to_list()]
        assert len(set(tokens)) == 1  # one shape per request
        shapes.append((len(sentences), bucket_length(tokens[0], run.model.max_length)))
    widths = padded_lengths(run.model.max_length)
    assert sorted(shapes) == sorted((b, w) for b in (1, 4) for w in widths)
    assert saved_model.load_metadata(version)["warmup_requests"] == len(shapes)
