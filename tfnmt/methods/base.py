"""What a method is: the architectures and objective names it trains, how it builds its
objective (the paper's loss terms and weights), and how its runs decode by default."""

import dataclasses
from typing import Callable


@dataclasses.dataclass
class Context:
    """What an objective may need from the training run. `teacher()` loads the frozen model of
    --teacher_run (KD, hints, imitation) and returns (model, checkpoint path)."""
    run: object
    target_tokenizer: object
    step: object  # the optimizer's step counter (a variable)
    rng: object  # the checkpointed training tf.random.Generator
    teacher: Callable
    log: Callable

    @property
    def train(self):
        return self.run.train

    @property
    def teacher_config(self):
        return self.run.train.teacher

    @property
    def settings(self):
        """The method's own training settings (its Settings; None if it has none)."""
        return self.run.train.settings


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    architectures: tuple
    objectives: tuple  # the TrainConfig.objective values it trains with
    build_objective: Callable  # Context -> objective(model, batch, training) -> named sums
    # Decoding for settings a user leaves unset: {architecture or None: {"method": strategy,
    # DecodeConfig field: the paper's value}}; the architecture's entry updates None's.
    decoding: dict
    # The dataclass of the training settings only this method reads (TrainConfig.settings;
    # fields named as their flags): {architecture, objective or None: class}.
    settings: dict = dataclasses.field(default_factory=dict)

    def settings_class(self, architecture, objective):
        """The Settings class a run of this architecture and objective reads, or None."""
        for key in (architecture, objective, None):
            if key in self.settings:
                return self.settings[key]
        return None

    def decode_defaults(self, architecture):
        return {**self.decoding.get(None, {}), **self.decoding.get(architecture, {})}

