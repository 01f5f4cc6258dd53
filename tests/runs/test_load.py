"""A run's config.json written by another version loads with one warning line naming the
unknown and missing keys; values it has are kept, never replaced by today's defaults. Files
written before the sections (flat names) load into them."""

import json
import os

from tfnmt import runs
from tfnmt.core import config as config_lib
from tfnmt.methods import hrt

from tests.conftest import make_run


def _rewrite(run, change):
    path = os.path.join(run.run_dir, runs.CONFIG)
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    change(values)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(values, f)


def test_unknown_and_missing_keys_are_named(tmp_path, reverse_task, capsys):
    run = make_run(tmp_path / "run", reverse_task, objective="hrt", train_steps=7, p_raw=0.5,
                   curriculum_lambda=2.0)
    capsys.readouterr()
    assert runs.load(run.run_dir).train.train_steps == 7
    assert capsys.readouterr().err == ""  # this version's own file: no warning

    def change(values):
        values["model"]["future_setting"] = 3
        values["model"]["gru"] = {"hidden": 8}  # a section a Transformer does not read
        values["train"]["settings"]["future_weight"] = 1.0
        del values["train"]["settings"]["curriculum_lambda"]
        del values["train"]["xla_elementwise"]  # free to change: its absence is not reported
    _rewrite(run, change)
    loaded = runs.load(run.run_dir)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: ")
    for unknown in ("model.future_setting", "model.gru", "train.settings.future_weight"):
        assert f"{unknown} is unknown" in err
    default = hrt.Settings().curriculum_lambda
    assert f"train.settings.curriculum_lambda is missing (today's default {default!r})" in err
    assert "xla_elementwise" not in err
    assert loaded.model.gru is None
    assert (loaded.train.train_steps, loaded.train.settings.p_raw) == (7, 0.5)
    assert loaded.train.settings.curriculum_lambda == default


def _flat(values, names):
    """config.json values as versions before the sections wrote them: every method's field by its
    flat name (`names`: {flat name: (section, field)}), defaults where the run had no section."""
    flat = {k: v for k, v in values.items() if not isinstance(v, dict) and v is not None}
    for name, (section, field) in names.items():
        flat[name] = (values.get(section) or {}).get(field, section_defaults[section][field])
    return flat


section_defaults = {
    "gru": vars(config_lib.GRUConfig()), "nat": {"attend_self": False, "length_offset": 0.0},
    "imitation": vars(config_lib.ImitationConfig()), "teacher": vars(config_lib.TeacherConfig()),
    "settings": {"hrt_chunk": 2, "curriculum_lambda": 1.0, "p_raw": 0.2, "hint_lambda": 8.0,
                 "hint_mu": 4.0, "gamma_st": 0.5, "gamma_tr": 0.5, "action_lambda": 0.001,
                 "action_alpha": 0.9, "il_lambda": 0.001, "length_weight": 0.1}}


def test_a_flat_config_of_an_earlier_version_loads_into_its_sections(tmp_path, reverse_task,
                                                                      capsys):
    model = config_lib.ModelConfig.from_shape("tiny", architecture="hybrid", decoder_hidden=24,
                                              attention="dot", dropout=0.0)
    cases = [(model, dict(teacher_run="runs/teacher", kd_lambda=0.5)),
             (config_lib.ModelConfig.from_shape("tiny", dropout=0.0),
              dict(objective="hrt", hrt_chunk=3, p_raw=0.5))]
    train_names = {flat: ("teacher", name) for flat, name in config_lib.FLAT_TEACHER.items()}
    train_names.update({name: ("settings", name) for name in section_defaults["settings"]})
    for i, (model, train) in enumerate(cases):
        run = make_run(tmp_path / str(i), reverse_task, model=model, **train)
        _rewrite(run, lambda values: values.update(
            model=_flat(values["model"], config_lib.FLAT_MODEL),
            train=_flat(values["train"], train_names)))
        capsys.readouterr()
        loaded = runs.load(run.run_dir)
        assert capsys.readouterr().err == ""
        assert (loaded.model, loaded.data, loaded.train) == (run.model, run.data, run.train)
    assert (loaded.train.settings.hrt_chunk, loaded.train.teacher) == (3, None)
