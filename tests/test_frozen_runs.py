"""Runs trained by the code of a pinned commit (tests/fixtures/frozen_runs, made by
make_frozen_runs.py) still load, translate token-identically and export: users' runs keep
working, and an optimised decode loop is checked against the code it replaced."""

import json
import os
import shutil

import numpy as np
import pytest

from tfnmt import runs
from tfnmt.config import DecodeConfig
from tfnmt.inference import Translator
from tfnmt.serving import export_run

from .fixtures.make_frozen_runs import DECODES

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "frozen_runs")


def expected():
    with open(os.path.join(FIXTURE, "expected.json"), encoding="utf-8") as f:
        return json.load(f)


# Every decoding with and without XLA for the Transformer; the GRU decoders share its loop, so
# for them XLA only with beam search (each compiled program costs seconds of the suite).
CHECKED = {"transformer": [(d, x) for d in DECODES for x in (False, True)],
           "hybrid": [(d, False) for d in DECODES] + [("beam4", True)],
           "rnmt": [(d, False) for d in DECODES] + [("beam4", True)]}


@pytest.mark.parametrize("name", list(CHECKED))
def test_a_pinned_commits_run_translates_as_it_did(name):
    """All 40 sentences in one batch (recorded in batches of 16: batching changes nothing)."""
    recorded = expected()
    run = runs.load(os.path.join(FIXTURE, name))
    model, _ = runs.restore_model(run, "latest")
    source, target = run.tokenizers()
    for decode, xla in CHECKED[name]:
        key = f"{decode}_{'xla' if xla else 'plain'}"
        translator = Translator(model, source, target,
                                DecodeConfig(batch_size=64, xla=xla, **DECODES[decode]),
                                run.model.max_length)
        got = translator.translate(recorded["sources"])
        want = recorded["runs"][name][key]
        assert [[t for t, _ in n_best] for n_best in got] == \
            [[t for t, _ in n_best] for n_best in want], key
        np.testing.assert_allclose([[s for _, s in n] for n in got],
                                   [[s for _, s in n] for n in want], atol=1e-4, err_msg=key)


def test_a_pinned_commits_run_exports(tmp_path):
    from .test_serving import assert_export_matches

    run_dir = tmp_path / "transformer"
    shutil.copytree(os.path.join(FIXTURE, "transformer"), run_dir)
    run = runs.load(str(run_dir))
    config = DecodeConfig(beam_size=4, batch_size=8)
    version = export_run(str(run_dir), str(tmp_path / "export"), "latest", config)
    texts = expected()["sources"][:8]
    translations = assert_export_matches(version, run, config, texts, names=("translate_plain",))
    want = expected()["runs"]["transformer"]["beam4_plain"][:8]
    assert [t[0][0] for t in translations] == [w[0][0] for w in want]


@pytest.mark.parametrize("xla", [False, True])
def test_bfloat16_decoding_stays_close_to_float32(xla):
    """--precision=bfloat16 on the pinned Transformer run: a stated tolerance, since bfloat16
    keeps 8 bits of mantissa (near-ties between tokens may flip)."""
    recorded = expected()
    run = runs.load(os.path.join(FIXTURE, "transformer"))
    model, _ = runs.restore_model(run, "latest", "bfloat16")
    assert model.compute_dtype == "bfloat16" and model.weights[0].dtype == "bfloat16"
    got = Translator(model, *run.tokenizers(), DecodeConfig(beam_size=4, batch_size=64, xla=xla,
                                                            precision="bfloat16"),
                     run.model.max_length).translate(recorded["sources"])
    want = recorded["runs"]["transformer"]["beam4_plain"]
    same = sum(g[0][0] == w[0][0] for g, w in zip(got, want))
    assert same >= 0.9 * len(want), same
    np.testing.assert_allclose([g[0][1] for g, w in zip(got, want) if g[0][0] == w[0][0]],
                               [w[0][1] for g, w in zip(got, want) if g[0][0] == w[0][0]],
                               rtol=0.05)


def test_token_budget_batches_translate_the_same():
    """--batch_tokens: batches within the budget, rows a power of two, every sentence once, and
    the same translations as batches of sentences."""
    recorded = expected()
    run = runs.load(os.path.join(FIXTURE, "transformer"))
    model, _ = runs.restore_model(run, "latest")
    translator = Translator(model, *run.tokenizers(),
                            DecodeConfig(beam_size=4, n_best=4, batch_tokens=48, xla=False),
                            run.model.max_length)
    seen = []
    for index, source in translator.batches(translator.encode(recorded["sources"])):
        rows, width = source.shape
        assert rows & (rows - 1) == 0 and (rows * width <= 48 or rows == 1)
        assert len(index) <= rows
        seen += index
    assert sorted(seen) == list(range(len(recorded["sources"])))
    got = translator.translate(recorded["sources"])
    want = recorded["runs"]["transformer"]["beam4_plain"]
    assert [[t for t, _ in n] for n in got] == [[t for t, _ in n] for n in want]


@pytest.mark.parametrize("xla", [False, True])
def test_int8_decoding_stays_close_to_float32(xla):
    """--precision=int8 (Keras quantization of the kernels) on the pinned Transformer run, with
    the same stated tolerance as bfloat16; the float32 model it was copied from is untouched."""
    recorded = expected()
    run = runs.load(os.path.join(FIXTURE, "transformer"))
    model, _ = runs.restore_model(run, "latest", "int8")
    assert any(w.dtype == "int8" for w in model.weights)
    got = Translator(model, *run.tokenizers(), DecodeConfig(beam_size=4, batch_size=64, xla=xla,
                                                            precision="int8"),
                     run.model.max_length).translate(recorded["sources"])
    want = recorded["runs"]["transformer"]["beam4_plain"]
    same = sum(g[0][0] == w[0][0] for g, w in zip(got, want))
    assert same >= 0.9 * len(want), same
    np.testing.assert_allclose([g[0][1] for g, w in zip(got, want) if g[0][0] == w[0][0]],
                               [w[0][1] for g, w in zip(got, want) if g[0][0] == w[0][0]],
                               rtol=0.05)
    with pytest.raises(Exception, match="precision int8 is for the"):
        runs.restore_model(runs.load(os.path.join(FIXTURE, "hybrid")), "latest", "int8")
