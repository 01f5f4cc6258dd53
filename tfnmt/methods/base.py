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


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    architectures: tuple
    objectives: tuple  # the TrainConfig.objective values it trains with
    build_objective: Callable  # Context -> objective(model, batch, training) -> named sums
    # Decoding for settings a user leaves unset: {architecture or None: {"method": strategy,
    # DecodeConfig field: the paper's value}}; the architecture's entry updates None's.
    decoding: dict
    # The TrainConfig fields only this method reads: {architecture, objective or None: names}.
    settings: dict = dataclasses.field(default_factory=dict)

    def reads(self, model_config, train_config):
        """The method-only training settings this run reads."""
        keys = (None, model_config.architecture, train_config.objective)
        return {name for key in keys for name in self.settings.get(key, ())}

    def decode_defaults(self, architecture):
        return {**self.decoding.get(None, {}), **self.decoding.get(architecture, {})}

