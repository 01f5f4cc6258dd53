"""The methods, one module each: what a paper adds to the shared layers, models and searches
(its objective with the paper's loss terms and weights, its decoding strategy and the paper's
decoding settings). The trainer and the translator look a run's method up here and never
branch on it; a new method is a module with a METHOD and one line below."""

from tfnmt.core.errors import UserError
from tfnmt.methods import at, cmlm, hint_nart, hrt, hybrid, imitate_nat
from tfnmt.methods.base import Context, Method

METHODS = {m.METHOD.name: m.METHOD for m in (at, hybrid, hint_nart, imitate_nat, hrt, cmlm)}

# Read by every method when a --teacher_run is given (KD, hints, imitation).
TEACHER_SETTINGS = ("kd_lambda", "kd_label_smoothing", "teacher_checkpoint")
METHOD_SETTINGS = {name for m in METHODS.values() for names in m.settings.values()
                   for name in names} | set(TEACHER_SETTINGS)

__all__ = ["Context", "Method", "METHODS", "METHOD_SETTINGS", "TEACHER_SETTINGS", "of_run",
           "unused_setting"]


def of_run(model_config, train_config) -> Method:
    """The method that trains this architecture with this objective."""
    architecture, objective = model_config.architecture, train_config.objective
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


def unused_setting(name, model_config, train_config):
    """True for a training setting of some method that this run's method never reads."""
    if name not in METHOD_SETTINGS:
        return False
    reads = of_run(model_config, train_config).reads(model_config, train_config)
    if train_config.teacher_run:
        reads |= set(TEACHER_SETTINGS)
    return name not in reads
