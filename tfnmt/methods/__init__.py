"""The methods, one module each: what a paper adds to the shared layers, models and searches
(its objective with the paper's loss terms and weights, its decoding strategy and the paper's
decoding settings). The trainer and the translator look a run's method up here and never
branch on it; a new method is a module with a METHOD and one line below."""

import dataclasses

from tfnmt.core import config as config_lib
from tfnmt.core.errors import UserError
from tfnmt.methods import at, cmlm, hint_nart, hrt, hybrid, imitate_nat
from tfnmt.methods.base import Context, Method

METHODS = {m.METHOD.name: m.METHOD for m in (at, hybrid, hint_nart, imitate_nat, hrt, cmlm)}

# The flat names of every method's own settings (the flags; config.json before sections).
SETTING_NAMES = {f.name for m in METHODS.values() for cls in m.settings.values()
                 for f in dataclasses.fields(cls)}

__all__ = ["Context", "Method", "METHODS", "SETTING_NAMES", "of_run", "settings_class",
           "train_config", "train_from_dict", "nest_train", "expected_train"]


def of_run(model_config, train_config) -> Method:
    """The method that trains this architecture with this objective."""
    return _of(model_config.architecture, train_config.objective)


def _of(architecture, objective) -> Method:
    for method in METHODS.values():
        if architecture in method.architectures and objective in method.objectives:
            return method
    trained = sorted({o for m in METHODS.values() for o in m.objectives})
    if objective not in trained:
        raise UserError(f"objective must be one of {', '.join(trained)}, got {objective!r}.")
    takes = sorted({a for m in METHODS.values() if objective in m.objectives
                    for a in m.architectures})
    raise UserError(f"objective {objective} needs --architecture={' or '.join(takes)}, got "
                    f"{architecture}.")


def settings_class(model_config, objective):
    """The Settings dataclass of this run's method, or None (it has no settings of its own)."""
    return _of(model_config.architecture, objective).settings_class(model_config.architecture,
                                                                   objective)


def nest_train(model_config, values: dict) -> dict:
    """TrainConfig values with flat names moved into sections: the teacher's (FLAT_TEACHER) into
    "teacher" when there is a teacher run, the run's method's own into "settings". The flat
    settings of other methods are dropped (flags and old config.json files hold them all)."""
    values = dict(values)
    teacher = {name: values.pop(flat) for flat, name in config_lib.FLAT_TEACHER.items()
               if flat in values}
    if teacher.get("run"):
        values["teacher"] = {**teacher, **(values.get("teacher") or {})}
    flat = {name: values.pop(name) for name in sorted(SETTING_NAMES & set(values))}
    cls = settings_class(model_config, values.get("objective", config_lib.TrainConfig.objective))
    if cls is not None:
        own = {f.name for f in dataclasses.fields(cls)}
        values["settings"] = {**{k: v for k, v in flat.items() if k in own},
                              **(values.get("settings") or {})}
        if hasattr(cls, "complete"):  # settings that default to another training value
            values["settings"] = cls.complete(values["settings"], values)
    return values


def train_from_dict(model_config, values: dict) -> config_lib.TrainConfig:
    """A TrainConfig from its nested values (config.json); keys it lacks are ignored."""
    train = config_lib.from_dict(config_lib.TrainConfig, values)
    cls = settings_class(model_config, train.objective)
    train.settings = None if cls is None else config_lib.from_dict(cls, train.settings or {})
    return train


def train_config(model_config, **values) -> config_lib.TrainConfig:
    """A TrainConfig from flat names, as the flags give them (nest_train)."""
    return train_from_dict(model_config, nest_train(model_config, values))


def expected_train(model_config, values: dict) -> dict:
    """What config.json's "train" holds for these (nested) values, with today's defaults: the
    teacher section if they name a teacher, the run's method's settings."""
    cls = settings_class(model_config, values.get("objective", config_lib.TrainConfig.objective))
    return dataclasses.asdict(config_lib.TrainConfig(
        teacher=config_lib.TeacherConfig() if values.get("teacher") else None,
        settings=cls() if cls else None))
