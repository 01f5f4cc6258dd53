"""Checkpoint averaging: the mean of a run's last checkpoints, saved as checkpoints/averaged."""

import os

import numpy as np
import tensorflow as tf
from tfnmt import runs
from tfnmt.core.errors import UserError
from tfnmt.models import build_model, named_weights


def average_checkpoints(run, num_last):
    state = tf.train.get_checkpoint_state(run.checkpoint_dir)
    paths = list(state.all_model_checkpoint_paths)[-num_last:] if state else []
    if not paths:
        raise UserError(f"{run.run_dir} has no checkpoints to average.")
    model = build_model(run.model)
    weights = named_weights(model)
    sums = {name: np.zeros(v.shape, np.float64) for name, v in weights.items()}
    for path in paths:
        try:
            reader = tf.train.load_checkpoint(path)
            for name in weights:
                key = "weights/" + name.replace(".", "..") + "/.ATTRIBUTES/VARIABLE_VALUE"
                sums[name] += reader.get_tensor(key)
        except runs.READ_ERRORS as e:
            raise runs.unreadable(run, path, runs.checkpoint_problem(path) or str(e)) from None
    for name, v in weights.items():
        v.assign((sums[name] / len(paths)).astype(v.dtype.as_numpy_dtype))
    step = int(os.path.basename(paths[-1]).split("-")[-1])
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(weights=weights),
                                         os.path.join(run.checkpoint_dir, "averaged"), 1)
    return manager.save(checkpoint_number=step), paths
