"""Exports a trained run as a SavedModel version for TensorFlow Serving:
python -m tfnmt.export --run_dir=runs/<name> --export_base=export/models/<name>."""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

from absl import flags

from tfnmt import decode_flags
from tfnmt.errors import UserError, run_main
from tfnmt.serving import export_run

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(decode_flags)  # --help lists the decoding flags too
flags.DEFINE_string("run_dir", None, "Trained run directory.")
flags.DEFINE_string("export_base", None, "Model base directory; a new numbered version is added.")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    if not FLAGS.export_base:
        raise UserError("--export_base is required.")
    config = decode_flags.decode_config()
    if not FLAGS.run_dir:
        raise UserError("--run_dir is required.")
    print(f"exported {export_run(FLAGS.run_dir, FLAGS.export_base, FLAGS.checkpoint, config)}")


if __name__ == "__main__":
    run_main(main)
