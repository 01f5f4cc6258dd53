"""A run's config.json written by another version loads with one warning line naming the
unknown and missing keys; values it has are kept, never replaced by today's defaults."""

import json
import os

from tfnmt import runs
from tfnmt.core.config import TrainConfig

from tests.conftest import make_run


def test_unknown_and_missing_keys_are_named(tmp_path, reverse_task, capsys):
    run = make_run(tmp_path / "run", reverse_task, train_steps=7, p_raw=0.5)
    capsys.readouterr()
    assert runs.load(run.run_dir).train.train_steps == 7
    assert capsys.readouterr().err == ""  # this version's own file: no warning
    path = os.path.join(run.run_dir, runs.CONFIG)
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    values["model"]["future_setting"] = 3
    del values["train"]["hint_mu"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(values, f)
    loaded = runs.load(run.run_dir)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: ")
    assert "model.future_setting is unknown" in err
    assert f"train.hint_mu is missing (today's default {TrainConfig().hint_mu!r})" in err
    assert (loaded.train.train_steps, loaded.train.p_raw) == (7, 0.5)
