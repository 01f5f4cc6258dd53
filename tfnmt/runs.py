"""A run directory: config.json, vocab/, checkpoints/, tensorboard/, translations/.

Everything needed to rebuild a trained model lives in the run directory, so translate, evaluate,
benchmark and export take only --run_dir.
"""

import dataclasses
import json
import os
import shutil

import tensorflow as tf

from tfnmt import config as config_lib
from tfnmt.data.corpus import write_atomic
from tfnmt.data.tokenizer import load_tokenizer
from tfnmt.errors import UserError

CONFIG = "config.json"


@dataclasses.dataclass
class Run:
    run_dir: str
    model: config_lib.ModelConfig
    data: config_lib.DataConfig
    train: config_lib.TrainConfig

    @property
    def checkpoint_dir(self):
        return os.path.join(self.run_dir, "checkpoints")

    @property
    def source_vocab(self):
        return os.path.join(self.run_dir, "vocab", "source.model")

    @property
    def target_vocab(self):
        return os.path.join(self.run_dir, "vocab", "target.model")

    def tokenizers(self):
        return load_tokenizer(self.source_vocab), load_tokenizer(self.target_vocab)


def create_or_check(run_dir, model, data, train) -> Run:
    """Creates run_dir (copying the vocabularies in) or checks that it was made with this model."""
    path = os.path.join(run_dir, CONFIG)
    if os.path.exists(path):
        existing = load(run_dir)
        old, new = dataclasses.asdict(existing.model), dataclasses.asdict(model)
        changed = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]
        if changed:
            raise UserError(f"{run_dir} holds a model with another configuration "
                            f"({'; '.join(changed)}); use a new --run_dir.")
        return Run(run_dir, existing.model, data, train)
    os.makedirs(os.path.join(run_dir, "vocab"), exist_ok=True)
    for name, source in (("source", data.source_vocab),
                         ("target", data.target_vocab or data.source_vocab)):
        path_out = os.path.join(run_dir, "vocab", f"{name}.model")
        shutil.copyfile(source, f"{path_out}.tmp-{os.getpid()}")  # workers may race: rename
        os.replace(f"{path_out}.tmp-{os.getpid()}", path_out)
    write_atomic(path, json.dumps({"model": dataclasses.asdict(model),
                                   "data": dataclasses.asdict(data),
                                   "train": dataclasses.asdict(train)}, indent=2))
    return Run(run_dir, model, data, train)


def load(run_dir) -> Run:
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise UserError(f"{run_dir} is not a tfnmt run directory (no {CONFIG}).")
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    return Run(run_dir, config_lib.from_dict(config_lib.ModelConfig, values["model"]),
               config_lib.from_dict(config_lib.DataConfig, values["data"]),
               config_lib.from_dict(config_lib.TrainConfig, values["train"]))


def find_checkpoint(run, which="best"):
    """which: best, latest, averaged, or a checkpoint path. 'best' falls back on 'latest'."""
    if which in ("best", "averaged"):
        found = tf.train.latest_checkpoint(os.path.join(run.checkpoint_dir, which))
        if found or which == "averaged":
            if not found:
                raise UserError(f"{run.run_dir} has no averaged checkpoint; run "
                                "python -m tfnmt.average_checkpoints first.")
            return found
        which = "latest"
    if which == "latest":
        found = tf.train.latest_checkpoint(run.checkpoint_dir)
        if not found:
            raise UserError(f"{run.run_dir} has no checkpoint yet.")
        return found
    if not tf.io.gfile.exists(which + ".index"):
        raise UserError(f"checkpoint {which} does not exist.")
    return which


def saved_weight_shapes(path):
    """{weight name: shape} of the weights a tfnmt checkpoint holds."""
    return {name.split("/")[1].replace("..", "."): shape
            for name, shape in tf.train.list_variables(path) if name.startswith("weights/")}


def check_same_vocabularies(run, other, role):
    """One clear error unless `other` (a teacher, rescorer...) uses this run's vocabularies."""
    for mine, theirs in ((run.source_vocab, other.source_vocab),
                         (run.target_vocab, other.target_vocab)):
        with open(mine, "rb") as a, open(theirs, "rb") as b:
            if a.read() != b.read():
                raise UserError(f"the {role} {other.run_dir} uses another vocabulary.")


def restore_shared_weights(model, run_dir, which="best"):
    """Restores into `model` the weights of another run's checkpoint: all of them for the same
    architecture and depth; otherwise those with the same name and shape (an imitate-NAT learner
    from its DAT keeps its fresh length classifier; a NART from its teacher, its positional
    attention; a deep-encoder, one-layer-decoder AT from a 3-3 teacher, its extra encoder layers).
    Returns (checkpoint path, names of the weights left fresh)."""
    from tfnmt.models import named_weights

    source = load(run_dir)
    path = find_checkpoint(source, which)
    weights = named_weights(model)
    fresh = []
    layout = lambda c: (c.architecture, c.encoder_layers, c.decoder_layers)  # noqa: E731
    if layout(source.model) != layout(model.config):
        saved = saved_weight_shapes(path)
        shared = {k: v for k, v in weights.items() if list(v.shape) == saved.get(k)}
        fresh = sorted(set(weights) - set(shared))
        weights = shared
    tf.train.Checkpoint(weights=weights).restore(path).expect_partial() \
        .assert_existing_objects_matched()
    return path, fresh


def restore_model(run, which="best"):
    """Builds the run's model in float32 and restores its weights (no optimizer state)."""
    from tfnmt.models import build_model, named_weights

    model = build_model(run.model)
    path = find_checkpoint(run, which)
    weights = named_weights(model)
    status = tf.train.Checkpoint(weights=weights).restore(path).expect_partial()
    status.assert_existing_objects_matched()
    missing = sorted(set(weights) - set(saved_weight_shapes(path)))
    if missing:
        raise UserError(f"checkpoint {path} lacks {len(missing)} weights of this model "
                        f"(first: {missing[0]}).")
    return model, path
