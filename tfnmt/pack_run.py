"""Packs a finished run's decoding files (config, records, vocabularies, weight-only
checkpoints) into a new directory, to ship it or keep it once its training checkpoints are gone:
python -m tfnmt.pack_run --run_dir=runs/x --output=packed/x [--checkpoints=averaged,best,ckpt-3000].
The packed run translates, evaluates, benchmarks and exports like the original
(--checkpoint=averaged); it cannot resume training.

--snapshot copies a run in progress instead, whole enough to resume exactly (its newest training
checkpoint with the optimizer state, its best weights, records and vocabularies), replacing an
earlier snapshot at --output: python -m tfnmt.pack_run --run_dir=runs/x --output=kept/x.snapshot
--snapshot. Copied back to a run directory, the same training command resumes from it."""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

from absl import flags

from tfnmt import runs
from tfnmt.core.errors import run_main, UserError
from tfnmt.core.files import check_creatable
from tfnmt.runs.packing import pack_run, snapshot_run

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Run directory to pack.")
flags.DEFINE_string("output", None, "New directory for the packed run (must not exist).")
flags.DEFINE_list("checkpoints", None, "Weight-only checkpoints to keep: averaged and/or best "
                  "and training checkpoints by name (ckpt-3000); default averaged. With "
                  "--snapshot, the older training checkpoints to keep as weights.")
flags.DEFINE_boolean("snapshot", False, "Copy a run in progress (not being trained) so that it "
                     "can resume: its newest training checkpoint, best weights and records. "
                     "Replaces an earlier snapshot at --output.")


def main(argv):
    del argv
    if not FLAGS.run_dir or not FLAGS.output:
        raise UserError("--run_dir and --output are required.")
    check_creatable(FLAGS.output, f"--output {FLAGS.output}")
    if FLAGS.snapshot:
        kept = snapshot_run(runs.load(FLAGS.run_dir), FLAGS.output, FLAGS.checkpoints or ())
        print(f"snapshot of {FLAGS.run_dir} at step {kept['step']} in {FLAGS.output}"
              + (f" (best weights: step {kept['best_step']})" if "best_step" in kept else ""))
        return
    packed = pack_run(runs.load(FLAGS.run_dir), FLAGS.output,
                      tuple(FLAGS.checkpoints or ("averaged",)))
    kept = ", ".join(f"{k} (step {v})" for k, v in packed["checkpoints"].items())
    print(f"packed {FLAGS.run_dir} into {FLAGS.output}: {kept}")


if __name__ == "__main__":
    run_main(main)
