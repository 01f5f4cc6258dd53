"""Translates a file or stdin: python -m tfnmt.translate --run_dir=... [--input=F] [--output=F]."""

import sys

from absl import flags

from tfnmt import decode_flags
from tfnmt.data import corpus
from tfnmt.errors import UserError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Trained run directory.")
flags.DEFINE_string("input", "-", "Source file, one sentence per line ('-': stdin).")
flags.DEFINE_string("output", "-", "Output file ('-': stdout); written whole, then renamed.")
flags.DEFINE_bool("with_scores", False, "Write 'score<TAB>translation' lines.")


def read_input(path):
    if path == "-":
        try:
            return [line.rstrip("\n") for line in sys.stdin]
        except UnicodeDecodeError:
            raise UserError("stdin is not valid UTF-8.") from None
    return corpus.read_lines(path)


def format_results(results, with_scores):
    lines = []
    for n_best in results:
        for text, score in n_best:
            lines.append(f"{score:.4f}\t{text}" if with_scores else text)
    return lines


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    translator, _ = decode_flags.load_translator(FLAGS.run_dir)
    results = translator.translate(read_input(FLAGS.input))
    corpus.write_lines(FLAGS.output, format_results(results, FLAGS.with_scores))


if __name__ == "__main__":
    run_main(main)
