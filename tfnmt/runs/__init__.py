"""A run directory: config.json, vocab/, checkpoints/, tensorboard/, translations/.

Everything needed to rebuild a trained model lives in the run directory, so translate, evaluate,
benchmark and export take only --run_dir.
"""

import dataclasses
import json
import os
import shutil
import sys
import time
import warnings

import keras
import tensorflow as tf

from tfnmt import methods
from tfnmt.core import config as config_lib
from tfnmt.core.errors import UserError
from tfnmt.core.files import replacing, write_atomic
from tfnmt.data import vocabulary
from tfnmt.data.tokenizer import load_tokenizer
from tfnmt.models import build_model, named_weights

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
        return self._vocab("source", self.data.source_vocab)

    @property
    def target_vocab(self):
        return self._vocab("target", self.data.target_vocab or self.data.source_vocab)

    def _vocab(self, side, given):
        """The run's own copy; before the run is saved (save_config), the given model."""
        copy = os.path.join(self.run_dir, "vocab", f"{side}.model")
        return copy if os.path.exists(copy) or not given else given

    def tokenizers(self):
        return load_tokenizer(self.source_vocab), load_tokenizer(self.target_vocab)


# Settings a resumed run may change without --allow_config_change: they decide how long and how
# often, not what is learned.
FREE_TO_CHANGE = {"train_steps", "save_every", "keep_checkpoints", "log_every", "eval_every",
                  "eval_bleu_sentences", "eval_beam_size", "patience", "xla", "xla_elementwise",
                  "init_from"}
PATH_FIELDS = {"train_source", "train_target", "train_distilled", "valid_source", "valid_target",
               "teacher.run"}
CHECKED_BY_CONTENT = {"source_vocab", "target_vocab"}  # prepare compares the files themselves


def _same_vocabulary(a, b):
    if not os.path.isfile(b):
        raise UserError(f"vocabulary {b} does not exist.")
    return vocabulary.same_vocabulary(a, b)


def _same_path(old, new):
    if old == new:
        return True
    if not old or not new:
        return False
    if os.path.exists(old) and os.path.exists(new):
        return os.path.samefile(old, new)
    return os.path.realpath(old) == os.path.realpath(new)


def flatten(config) -> dict:
    """A config's fields by dotted name ("teacher.run"); a section that is None stays one key."""
    def walk(values, prefix):
        for key, value in values.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield prefix + key, value
    return dict(walk(dataclasses.asdict(config), ""))


def _differences(old, new, skip=frozenset()):
    """'name old -> new' for every field (dotted) that differs; paths compared as files."""
    old, new = flatten(old), flatten(new)
    changes = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key), new.get(key)
        if key in skip or was == now or (key in PATH_FIELDS and _same_path(was, now)):
            continue
        changes.append(f"{key} {was!r} -> {now!r}")
    return changes


def config_changes(existing: "Run", data, train):
    """'name old -> new' for every data or training setting that differs from the run's."""
    skip = FREE_TO_CHANGE | CHECKED_BY_CONTENT
    return _differences(existing.data, data, skip) + _differences(existing.train, train, skip)


def prepare(run_dir, model, data, train, allow_config_change=False) -> Run:
    """The run to train: a new one (nothing written yet: see save_config), or the existing one
    after checking that the command describes it. A model change is always refused; a data or
    training change only with allow_config_change, and then recorded in config.json's
    "history"."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.exists(path):
        return Run(run_dir, model, data, train)
    existing = load(run_dir)
    changed = _differences(existing.model, model)
    if changed:
        raise UserError(f"{run_dir} holds a model with another configuration "
                        f"({'; '.join(changed)}); use a new --run_dir.")
    for side, given in (("source", data.source_vocab),
                        ("target", data.target_vocab or data.source_vocab)):
        copy = os.path.join(run_dir, "vocab", f"{side}.model")
        if given and os.path.exists(copy) and not _same_vocabulary(copy, given):
            raise UserError(f"{given} is not the {side} vocabulary {run_dir} was trained with "
                            f"({copy}); a run keeps its vocabulary, use a new --run_dir.")
    changes = config_changes(existing, data, train)
    run = Run(run_dir, existing.model, data, train)
    if changes and not allow_config_change:
        raise UserError(f"{run_dir} was trained with other settings ({'; '.join(changes)}); "
                        "repeat the run's own command to resume, or pass --allow_config_change "
                        "to continue with the new ones.")
    if changes:
        history = json.load(open(path, encoding="utf-8")).get("history", [])
        history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "changes": changes})
        save_config(run, history)
    return run


def save_config(run: Run, history=None):
    """Writes config.json (atomically) and copies the vocabularies in, on the first training
    step of a new run, so a command that fails earlier leaves nothing behind."""
    os.makedirs(os.path.join(run.run_dir, "vocab"), exist_ok=True)
    for name, source in (("source", run.data.source_vocab),
                         ("target", run.data.target_vocab or run.data.source_vocab)):
        path_out = os.path.join(run.run_dir, "vocab", f"{name}.model")
        if os.path.exists(path_out):
            continue  # a run keeps the vocabularies it was trained with
        with replacing(path_out) as tmp:  # workers may race: rename
            shutil.copyfile(source, tmp)
    values = {"model": dataclasses.asdict(run.model), "data": dataclasses.asdict(run.data),
              "train": dataclasses.asdict(run.train)}
    if history:
        values["history"] = history
    write_atomic(os.path.join(run.run_dir, CONFIG), json.dumps(values, indent=2))


def create_or_check(run_dir, model, data, train) -> Run:
    """prepare, then save_config for a new run (tests and tools that build runs directly)."""
    run = prepare(run_dir, model, data, train)
    if not os.path.exists(os.path.join(run_dir, CONFIG)):
        save_config(run)
    return run


def load(run_dir) -> Run:
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise UserError(f"{run_dir} is not a tfnmt run directory (no {CONFIG}).")
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path} cannot be read as a run configuration ({e}).") from None
    if not isinstance(values, dict):
        raise UserError(f"{path} is not a run configuration (a JSON object).")
    # Flat names (config.json before sections) move into their sections.
    model_values = config_lib.nest_model(values.get("model", {}))
    if "encoder_attention_dropout" not in model_values:  # before 2026-12-03: the encoder's
        model_values["encoder_attention_dropout"] = model_values.get(  # attention took `dropout`
            "dropout", config_lib.ModelConfig.dropout)
    model = config_lib.from_dict(config_lib.ModelConfig, model_values)
    train_values = methods.nest_train(model, values.get("train", {}))
    data_values = values.get("data", {})
    expected = {"model": config_lib.ModelConfig(architecture=model.architecture),
                "data": config_lib.DataConfig()}
    expected = {**{k: dataclasses.asdict(v) for k, v in expected.items()},
                "train": methods.expected_train(model, train_values)}
    notes = []
    for part, given in (("model", model_values), ("data", data_values), ("train", train_values)):
        unknown, missing = config_lib.key_differences(expected[part], given)
        notes += [f"{part}.{k} is unknown to this version (ignored)" for k in unknown]
        notes += [f"{part}.{k} is missing (today's default {v!r})" for k, v in missing.items()
                  if not (part == "train" and k in FREE_TO_CHANGE)]  # how, not what, it learns
    if notes:  # a run written by another version of tfnmt
        print(f"warning: {path}: {'; '.join(notes)}.", file=sys.stderr, flush=True)
    return Run(run_dir, model, config_lib.from_dict(config_lib.DataConfig, data_values),
               methods.train_from_dict(model, train_values))


def split_checkpoint(value, default="best"):
    """"run_dir@checkpoint" -> (run_dir, checkpoint); without "@", the default checkpoint."""
    run_dir, _, which = value.partition("@")
    return run_dir, which or default


# checkpoints/resume holds the one checkpoint of a stop between scheduled saves (SIGTERM, Ctrl-C,
# --stop_after); the next scheduled save removes it, so the checkpoints kept in checkpoints/ (and
# averaged) are those of an uninterrupted run.
RESUME = "resume"


def training_checkpoints(checkpoint_dir):
    """The training checkpoints under checkpoint_dir, oldest first: those its index lists, and
    the stop checkpoint of checkpoints/resume. Paths are joined to checkpoint_dir (a moved run
    finds its own)."""
    paths = []
    for directory in (checkpoint_dir, os.path.join(checkpoint_dir, RESUME)):
        state = tf.train.get_checkpoint_state(directory)
        paths += [os.path.join(directory, os.path.basename(p))
                  for p in (state.all_model_checkpoint_paths if state else [])]
    return sorted(paths, key=lambda p: int(p.rsplit("-", 1)[-1]))


def find_checkpoint(run, which="best"):
    """which: best, latest, averaged, a checkpoint of the run by name (ckpt-1500) or a
    checkpoint path. 'best' falls back on 'latest'."""
    if which in ("best", "averaged"):
        found = tf.train.latest_checkpoint(os.path.join(run.checkpoint_dir, which))
        if found or which == "averaged":
            if not found:
                raise UserError(f"{run.run_dir} has no averaged checkpoint; run "
                                "python -m tfnmt.average_checkpoints first.")
            return found
        which = "latest"
    if which == "latest":
        found = next((p for p in reversed(training_checkpoints(run.checkpoint_dir))
                      if tf.io.gfile.exists(p + ".index")), None)
        if not found:
            raise UserError(f"{run.run_dir} has no checkpoint yet.")
        return found
    if tf.io.gfile.exists(which + ".index"):
        return which
    for directory in (run.checkpoint_dir, os.path.join(run.checkpoint_dir, RESUME)):
        named = os.path.join(directory, which)
        if os.sep not in which and tf.io.gfile.exists(named + ".index"):
            return named
    kept = [os.path.basename(p) for p in training_checkpoints(run.checkpoint_dir)]
    raise UserError(f"checkpoint {which} does not exist; {run.run_dir} has best, latest, "
                    f"averaged{''.join(', ' + k for k in kept)} or a checkpoint path.")


READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, RuntimeError)


def checkpoint_problem(path):
    """None if every tensor of the checkpoint at `path` reads back, else a one-line reason."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except READ_ERRORS as e:
        return str(e).strip().splitlines()[0][:200] or type(e).__name__
    return None


def all_checkpoints(run):
    """Every training checkpoint of the run (oldest first), plus best and averaged."""
    paths = training_checkpoints(run.checkpoint_dir)
    for which in ("best", "averaged"):
        found = tf.train.latest_checkpoint(os.path.join(run.checkpoint_dir, which))
        if found:
            paths.append(found)
    return paths


def unreadable(run, path, reason):
    """The one-line error for a checkpoint that cannot be read, naming the intact ones."""
    intact = [p for p in all_checkpoints(run) if p != path and checkpoint_problem(p) is None]
    return UserError(f"checkpoint {path} (files {os.path.basename(path)}.index and .data-*) is "
                     f"unreadable: {reason}. Intact checkpoints of {run.run_dir}: "
                     f"{', '.join(intact) if intact else 'none'}"
                     f"{' (pass one with --checkpoint)' if intact else ''}.")


def saved_weight_shapes(path):
    """{weight name: shape} of the weights a tfnmt checkpoint holds."""
    try:
        variables = tf.train.list_variables(path)
    except READ_ERRORS as e:
        raise UserError(f"checkpoint {path} is unreadable: {str(e).strip()[:200]}.") from None
    return {name.split("/")[1].replace("..", "."): shape
            for name, shape in variables if name.startswith("weights/")}


def check_same_vocabularies(run, other, role):
    """One clear error unless `other` (a teacher, rescorer...) uses this run's vocabularies."""
    for mine, theirs in ((run.source_vocab, other.source_vocab),
                         (run.target_vocab, other.target_vocab)):
        if not vocabulary.same_vocabulary(mine, theirs):
            raise UserError(f"the {role} {other.run_dir} uses another vocabulary.")


def restore_shared_weights(model, run_dir, which="best"):
    """Restores into `model` the weights of another run's checkpoint: all of them for the same
    architecture and depth; otherwise those with the same name and shape (an imitate-NAT learner
    from its DAT keeps its fresh length classifier; a NART from its teacher, its positional
    attention; a deep-encoder, one-layer-decoder AT from a 3-3 teacher, its extra encoder layers).
    Returns (checkpoint path, names of the weights left fresh)."""

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
    try:
        tf.train.Checkpoint(weights=weights).restore(path).expect_partial() \
            .assert_existing_objects_matched()
    except READ_ERRORS as e:
        raise unreadable(source, path, checkpoint_problem(path) or str(e)) from None
    return path, fresh


PRECISIONS = ("float32", "bfloat16", "int8")
# int8: Keras's quantization of every Dense/EinsumDense kernel (int8 weights, inputs quantized
# on the fly), and the tied output table in int8 when decoding (EncoderDecoder.int8_output).
# Layers Keras cannot quantize (its GRU layers: the RNMT encoder) stay float32.


def restore_model(run, which="best", precision="float32"):
    """Builds the run's model and restores its weights (no optimizer state); with precision
    bfloat16 or int8, returns a copy at that precision for decoding (at_precision). The model
    is for decoding: its output table's decoding layout is kept (keep_decoding_constants)."""

    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    model = build_model(run.model)
    path = find_checkpoint(run, which)
    weights = named_weights(model)
    try:
        saved = saved_weight_shapes(path)
    except UserError:
        saved = None  # an unreadable index: the restore below names the intact checkpoints
    if saved is not None:  # a checkpoint of another model: say so before restoring
        missing = sorted(set(weights) - set(saved))
        if missing:
            raise UserError(f"checkpoint {path} lacks {len(missing)} weights of this model "
                            f"(first: {missing[0]}): is it another run's?")
        wrong = [(name, saved[name], list(v.shape)) for name, v in sorted(weights.items())
                 if list(saved[name]) != list(v.shape)]
        if wrong:
            name, theirs, mine = wrong[0]
            raise UserError(f"checkpoint {path} holds {len(wrong)} weights of other shapes "
                            f"(first: {name} {theirs}, this model {mine}): is it another run's?")
    try:
        status = tf.train.Checkpoint(weights=weights).restore(path).expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, *READ_ERRORS) as e:
        raise unreadable(run, path, checkpoint_problem(path) or str(e)) from None
    if precision != "float32":
        return at_precision(model, precision), path
    model.keep_decoding_constants()
    return model, path


def at_precision(model, precision):
    """A copy of `model` for decoding at `precision`: a Keras dtype policy (bfloat16: variables
    and computations in it), or int8 (Keras quantization of the float32 copy's kernels)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if precision == "int8" else precision)
    try:
        copy = build_model(model.config)
    finally:
        keras.config.set_dtype_policy(previous)
    theirs = named_weights(copy)
    for name, weight in named_weights(model).items():
        theirs[name].assign(tf.cast(weight, theirs[name].dtype))
    if precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "X does not have a quantize method" (norms, ...)
            copy.quantize("int8", filters=lambda layer: not getattr(layer, "keep_float32",
                                                                     False))
        copy.int8_output = copy.config.tie_output
    copy.keep_decoding_constants()
    return copy
