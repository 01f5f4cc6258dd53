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


@pytest.mark.parametrize("name", ["transformer", "hybrid", "rnmt"])
def test_a_pinned_commits_run_translates_as_it_did(name):
    recorded = expected()
    run = runs.load(os.path.join(FIXTURE, name))
    model, _ = runs.restore_model(run, "latest")
    source, target = run.tokenizers()
    for decode, flags in DECODES.items():
        for xla in (False, True):
            key = f"{decode}_{'xla' if xla else 'plain'}"
            translator = Translator(model, source, target,
                                    DecodeConfig(batch_size=16, xla=xla, **flags),
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
