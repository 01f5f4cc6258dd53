"""Packed runs: a finished run's decoding files only, to ship it or keep it once its training
checkpoints are gone. A packed run is a run directory (config, records, vocabularies and the
chosen weight-only checkpoints): it translates, evaluates, benchmarks and exports like the
original, and cannot resume training (it has no optimizer state).

A snapshot is the other kind of copy: a run in progress, kept whole enough to resume exactly
(its newest training checkpoint with the optimizer state and RNG, its best weights, records and
vocabularies), so a training outlives the machine it ran on. A new snapshot replaces the old."""

import fcntl
import json
import os
import shutil
import time

import tensorflow as tf

from tfnmt import runs
from tfnmt.core.errors import UserError
from tfnmt.models import build_model, named_weights
from tfnmt.runs import records

PACKED = "packed.json"  # what was packed: source run, checkpoints and their steps
SNAPSHOT = "snapshot.json"  # what a snapshot holds: source run, its step and best step
LOCK = "train.lock"  # held by the process training the run (training.trainer)
KEPT_FILES = (runs.CONFIG, records.SEGMENTS, records.VALIDATIONS)
CHECKPOINTS = ("averaged", "best")  # and training checkpoints by name (ckpt-3000), weights only


def is_packed(run_dir):
    return os.path.isfile(os.path.join(run_dir, PACKED))


def _is_training_checkpoint(name):
    return name.startswith("ckpt-") and name[5:].isdigit()


def pack_run(run, output, checkpoints=("averaged",)):
    """Copies run's config, records, vocabularies and the named weight-only checkpoints
    (averaged, best, or a training checkpoint such as ckpt-3000, its weights kept where they
    were: checkpoints/ckpt-3000) to `output`, which must not exist: the copy is made beside it
    and renamed into place, so `output` is whole or absent. Returns the packed.json contents."""
    unknown = [c for c in checkpoints if c not in CHECKPOINTS and not _is_training_checkpoint(c)]
    if unknown or not checkpoints:
        raise UserError(f"--checkpoints takes {' and/or '.join(CHECKPOINTS)} and training "
                        f"checkpoints by name (ckpt-3000), not {','.join(checkpoints) or 'nothing'}.")
    if os.path.lexists(output):
        raise UserError(f"{output} exists; pack into a new directory.")
    found = {}
    for which in checkpoints:
        if _is_training_checkpoint(which):
            path = os.path.join(run.checkpoint_dir, which)
            path = path if tf.io.gfile.exists(path + ".index") else None
        else:
            path = tf.train.latest_checkpoint(os.path.join(run.checkpoint_dir, which))
        if not path:
            raise UserError(f"{run.run_dir} has no {which} checkpoint to pack"
                            + (" (python -m tfnmt.average_checkpoints makes it)."
                               if which == "averaged" else "."))
        problem = runs.checkpoint_problem(path)
        if problem:
            raise runs.unreadable(run, path, problem)
        found[which] = path
    output = os.path.normpath(output)
    tmp = f"{output}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        for name in KEPT_FILES:
            source = os.path.join(run.run_dir, name)
            if os.path.isfile(source):
                shutil.copy2(source, os.path.join(tmp, name))
        vocab = os.path.join(run.run_dir, "vocab")
        if os.path.isdir(vocab):
            shutil.copytree(vocab, os.path.join(tmp, "vocab"))
        steps = {}
        for which, path in found.items():
            if _is_training_checkpoint(which):
                steps[which] = _copy_weights(run, path, os.path.join(tmp, "checkpoints"))
            else:
                steps[which] = _copy_checkpoint(path, os.path.join(tmp, "checkpoints", which))
        packed = {"from": os.path.abspath(run.run_dir), "checkpoints": steps}
        with open(os.path.join(tmp, PACKED), "w", encoding="utf-8") as f:
            json.dump(packed, f, indent=2)
        os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return packed


def is_snapshot(run_dir):
    return os.path.isfile(os.path.join(run_dir, SNAPSHOT))


def _checkpoint_state(directory, path):
    """A checkpoint directory's own state file (tf.train's text format) naming one checkpoint
    relatively, so the copy resumes wherever it is moved. With its timestamp: a
    tf.train.CheckpointManager lists (and resumes from) only the checkpoints that have one."""
    name = os.path.basename(path)
    with open(os.path.join(directory, "checkpoint"), "w", encoding="utf-8") as f:
        f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n'
                f"all_model_checkpoint_timestamps: {time.time():.3f}\n")


def _copy_checkpoint(path, directory):
    os.makedirs(directory, exist_ok=True)
    for name in tf.io.gfile.glob(path + ".*"):
        shutil.copy2(name, directory)
    _checkpoint_state(directory, path)
    return int(os.path.basename(path).rsplit("-", 1)[-1])


def _copy_weights(run, path, directory):
    """The weights of training checkpoint `path` alone (no optimizer state, a third of its
    size), under the same name in `directory`, where runs.find_checkpoint finds it by name."""
    weights = named_weights(build_model(run.model))
    tf.train.Checkpoint(weights=weights).restore(path).expect_partial() \
        .assert_existing_objects_matched()
    os.makedirs(directory, exist_ok=True)
    copy = tf.train.Checkpoint(weights=weights)
    copy.save_counter  # noqa: B018  (made now so that it is written, as every tfnmt save does)
    copy.write(os.path.join(directory, os.path.basename(path)))
    return int(os.path.basename(path).rsplit("-", 1)[-1])


def _being_trained(run_dir):
    path = os.path.join(run_dir, LOCK)
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def snapshot_run(run, output, keep=()):
    """Copies run (not being trained) to `output` whole enough to resume exactly: every file but
    the lock and the TensorBoard logs, its newest readable training checkpoint and its best
    weights. An existing snapshot at `output` is replaced only once the new one is complete;
    anything else there is refused. The older training checkpoints are left out (each holds the
    optimizer state), so averaging after a resume from a snapshot sees the snapshot's checkpoint
    and the ones saved after it; `keep` names older ones (ckpt-3000) to keep as weights where
    the run has them. Returns the snapshot.json contents."""
    wrong = [name for name in keep if not _is_training_checkpoint(name)]
    if wrong:
        raise UserError(f"a snapshot keeps training checkpoints by name (ckpt-3000) beside its "
                        f"newest and best, not {','.join(wrong)}.")
    if is_packed(run.run_dir):
        raise UserError(f"{run.run_dir} is a packed run: it has no training state to snapshot.")
    if _being_trained(run.run_dir):
        raise UserError(f"{run.run_dir} is being trained; stop it first (SIGTERM saves a "
                        "checkpoint).")
    if os.path.lexists(output) and not is_snapshot(output):
        raise UserError(f"{output} exists and is not a snapshot; snapshot into a new directory.")
    newest = next((path for path in reversed(runs.training_checkpoints(run.checkpoint_dir))
                   if runs.checkpoint_problem(path) is None), None)
    if newest is None:
        raise UserError(f"{run.run_dir} has no readable training checkpoint to snapshot.")
    output = os.path.normpath(output)
    tmp = f"{output}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(run.run_dir, tmp, ignore=lambda d, names: [
            n for n in names
            if (d == run.run_dir and n in (LOCK, "tmp", "checkpoints", "tensorboard"))])
        where = os.path.relpath(os.path.dirname(newest), run.checkpoint_dir)  # resume/ stays
        snapshot = {"from": os.path.abspath(run.run_dir), "step": _copy_checkpoint(
            newest, os.path.normpath(os.path.join(tmp, "checkpoints", where)))}
        for name in keep:
            path = os.path.join(run.checkpoint_dir, name)
            if (_is_training_checkpoint(name) and path != newest
                    and tf.io.gfile.exists(path + ".index")):
                snapshot.setdefault("weights", []).append(
                    _copy_weights(run, path, os.path.join(tmp, "checkpoints")))
        best = tf.train.latest_checkpoint(os.path.join(run.checkpoint_dir, "best"))
        if best:
            snapshot["best_step"] = _copy_checkpoint(best, os.path.join(tmp, "checkpoints",
                                                                        "best"))
            score = os.path.join(run.checkpoint_dir, "best", "score.txt")
            if os.path.isfile(score):
                shutil.copy2(score, os.path.join(tmp, "checkpoints", "best"))
        with open(os.path.join(tmp, SNAPSHOT), "w", encoding="utf-8") as f:
            json.dump(snapshot, f, indent=2)
        old = f"{output}.old-{os.getpid()}"
        if os.path.lexists(output):
            os.rename(output, old)
        os.rename(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return snapshot
