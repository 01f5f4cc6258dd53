"""Distils a corpus with a teacher (sequence-level KD), resumably:
python -m tfnmt.distill --teacher_run=runs/<teacher> --source=train.en --output=data/distilled/train.de
"""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

from absl import flags

from tfnmt.cli import decode_flags
from tfnmt.core.errors import run_main, UserError
from tfnmt.data import corpus
from tfnmt.training.distillation import distill_file

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(decode_flags)  # --help lists the decoding flags too
flags.DEFINE_string("teacher_run", None, "The teacher's run directory.")
flags.DEFINE_string("source", None, "Source side of the corpus to distil.")
flags.DEFINE_string("output", None, "Distilled targets, line-aligned with --source.")
flags.DEFINE_integer("chunk_size", 1000, "Lines translated between two syncs of the output.")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    for name in ("teacher_run", "source", "output"):
        if not getattr(FLAGS, name):
            raise UserError(f"--{name} is required.")
    corpus.check_output_path(FLAGS.output, [FLAGS.source])
    translator, checkpoint = decode_flags.load_translator(FLAGS.teacher_run)
    job = {"teacher": checkpoint, "decode": vars(translator.config)}
    lines = distill_file(translator, FLAGS.source, FLAGS.output, job, FLAGS.chunk_size)
    print(f"wrote {lines} lines to {FLAGS.output}")


if __name__ == "__main__":
    run_main(main)
