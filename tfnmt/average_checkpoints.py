"""Averages the weights of a run's last checkpoints into checkpoints/averaged:
python -m tfnmt.average_checkpoints --run_dir=... [--num_last=5]."""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import os

from absl import flags

from tfnmt import runs
from tfnmt.core.errors import run_main, UserError
from tfnmt.runs.averaging import average_checkpoints

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Run directory.")
flags.DEFINE_integer("num_last", 5, "How many of the latest checkpoints to average.")


def main(argv):
    del argv
    if not FLAGS.run_dir:
        raise UserError("--run_dir is required.")
    if FLAGS.num_last < 1:
        raise UserError("--num_last must be at least 1.")
    path, paths = average_checkpoints(runs.load(FLAGS.run_dir), FLAGS.num_last)
    print(f"averaged {len(paths)} checkpoints ({', '.join(os.path.basename(p) for p in paths)}) "
          f"into {path}")


if __name__ == "__main__":
    run_main(main)
