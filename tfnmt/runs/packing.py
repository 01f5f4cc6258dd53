"""Packed runs: a finished run's decoding files only, to ship it or keep it once its training
checkpoints are gone. A packed run is a run directory (config, records, vocabularies and the
chosen weight-only checkpoints): it translates, evaluates, benchmarks and exports like the
original, and cannot resume training (it has no optimizer state)."""

import json
import os
import shutil

import tensorflow as tf

from tfnmt import runs
from tfnmt.core.errors import UserError
from tfnmt.runs import records

PACKED = "packed.json"  # what was packed: source run, checkpoints and their steps
KEPT_FILES = (runs.CONFIG, records.SEGMENTS, records.VALIDATIONS)
CHECKPOINTS = ("averaged", "best")


def is_packed(run_dir):
    return os.path.isfile(os.path.join(run_dir, PACKED))


def pack_run(run, output, checkpoints=("averaged",)):
    """Copies run's config, records, vocabularies and the named weight-only checkpoints
    (averaged, best) to `output`, which must not exist: the copy is made beside it and renamed
    into place, so `output` is whole or absent. Returns the packed.json contents."""
    unknown = [c for c in checkpoints if c not in CHECKPOINTS]
    if unknown or not checkpoints:
        raise UserError(f"--checkpoints takes {' and/or '.join(CHECKPOINTS)}, not "
                        f"{','.join(checkpoints) or 'nothing'}.")
    if os.path.lexists(output):
        raise UserError(f"{output} exists; pack into a new directory.")
    found = {}
    for which in checkpoints:
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
            target = os.path.join(tmp, "checkpoints", which)
            os.makedirs(target)
            for name in tf.io.gfile.glob(path + ".*"):
                shutil.copy2(name, target)
            # Its own checkpoint state (tf.train's text format), naming the files relatively.
            name = os.path.basename(path)
            with open(os.path.join(target, "checkpoint"), "w", encoding="utf-8") as f:
                f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
            steps[which] = int(name.rsplit("-", 1)[-1])
        packed = {"from": os.path.abspath(run.run_dir), "checkpoints": steps}
        with open(os.path.join(tmp, PACKED), "w", encoding="utf-8") as f:
            json.dump(packed, f, indent=2)
        os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return packed
