"""Model registry: every architecture is built from a ModelConfig by name."""

import hashlib

from tfnmt.core.errors import UserError
from tfnmt.models.cmlm import CMLM
from tfnmt.models.imitation import Demonstrator, ImitateNAT
from tfnmt.models.nat import NART
from tfnmt.models.recurrent import Hybrid, RNMT
from tfnmt.models.transformer import Transformer


def build_model(config):

    architectures = {"transformer": Transformer, "hybrid": Hybrid, "rnmt": RNMT, "cmlm": CMLM,
                     "nart": NART, "dat": Demonstrator, "imitate_nat": ImitateNAT}
    if config.architecture not in architectures:
        raise UserError(f"unknown architecture {config.architecture!r}; "
                        f"choose one of {', '.join(architectures)}.")
    config.validate()
    model = architectures[config.architecture](config)
    model.build()
    return model


def named_weights(model, tracked=False):
    """{path without the model's own name: variable} for tf.train.Checkpoint and SavedModels.

    tf.train.Checkpoint(model=keras_model) misses Keras 3 layers kept in Python lists, so every
    checkpoint in tfnmt tracks weights by their Keras path instead. Dropout seed-generator
    states are left out (their names carry process-wide counters; see training.seed_variables).
    The variables are tf.Variables; tracked=True gives the Keras variables themselves, the
    objects a Keras optimizer tracks, so a checkpoint of both saves each weight once.
    """
    weights = {}
    for v in model.weights:
        if "seed_generator" in v.path:
            continue
        name = v.path.split("/", 1)[1].replace("/", ".")
        if name in weights:
            raise ValueError(f"two weights share the path {v.path}")
        weights[name] = v if tracked else v.value
    return weights


def fingerprint(model):
    """sha256 of every weight (sorted by name), 16 hex digits: equal fingerprints = identical
    weights (a benchmark row names the weights it timed; a training prints its last ones)."""
    digest = hashlib.sha256()
    for name, v in sorted(named_weights(model).items()):
        digest.update(name.encode())
        digest.update(v.numpy().tobytes())
    return digest.hexdigest()[:16]
