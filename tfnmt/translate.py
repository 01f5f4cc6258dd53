"""Translates a file or stdin: python -m tfnmt.translate --run_dir=... [--input=F] [--output=F].

From a pipe, sentences are translated as they arrive (batches of what came within --wait_ms) and
each batch is written and flushed at once, like marian-decoder and fairseq-interactive.
"""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import queue
import sys
import threading
import time

from absl import flags

from tfnmt.cli import decode_flags
from tfnmt.core.errors import run_main, UserError
from tfnmt.core.progress import Progress
from tfnmt.data import corpus

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(decode_flags)  # --help lists the decoding flags too
flags.DEFINE_string("run_dir", None, "Trained run directory.")
flags.DEFINE_string("input", "-", "Source file, one sentence per line ('-': stdin, translated as "
                    "lines arrive).")
flags.DEFINE_string("output", "-", "Output file ('-': stdout); a file is written whole, then "
                    "renamed.")
flags.DEFINE_bool("with_scores", False, "Write 'score<TAB>translation' lines; the score is "
                  "log P(translation | source).")
flags.DEFINE_integer("wait_ms", 100, "stdin: how long a batch waits for more lines.")


def format_results(results, with_scores):
    lines = []
    for n_best in results:
        for text, score in n_best:
            lines.append(f"{score:.4f}\t{text}" if with_scores else text)
    return lines


def warn_truncated(translator, first_line):
    for index, tokens in translator.truncated:
        print(f"warning: line {first_line + index} has {tokens} tokens; the model reads at most "
              f"{translator.max_length - 1}, the rest was cut.", file=sys.stderr)


def stream_batches(lines, batch_size, wait):
    """Groups an iterator of lines into batches: a batch starts with the next line and takes
    whatever else arrives within `wait` seconds, up to batch_size lines."""
    pending, end = queue.Queue(), object()
    failure = []

    def read():
        try:
            for line in lines:
                pending.put(line)
        except UserError as e:
            failure.append(e)
        pending.put(end)

    threading.Thread(target=read, daemon=True).start()
    finished = False
    while not finished:
        item = pending.get()
        if item is end:
            break
        batch, deadline = [item], time.time() + wait
        while len(batch) < batch_size:
            try:
                item = pending.get(timeout=max(deadline - time.time(), 0))
            except queue.Empty:
                break
            if item is end:
                finished = True
                break
            batch.append(item)
        yield batch
    if failure:
        raise failure[0]


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    corpus.check_output_path(FLAGS.output, [FLAGS.input])
    if FLAGS.wait_ms < 0:
        raise UserError(f"--wait_ms must be >= 0, got {FLAGS.wait_ms}.")
    lines = None if FLAGS.input == "-" else corpus.read_lines(FLAGS.input)
    translator, _ = decode_flags.load_translator(FLAGS.run_dir)
    if lines is not None:
        progress = Progress(len(lines))
        results = translator.translate(lines, progress)
        progress.done()
        warn_truncated(translator, 1)
        corpus.write_lines(FLAGS.output, format_results(results, FLAGS.with_scores))
        return
    written, kept = 0, []
    for batch in stream_batches(corpus.iter_stdin_lines(), translator.config.batch_size,
                                FLAGS.wait_ms / 1000):
        out = format_results(translator.translate(batch), FLAGS.with_scores)
        warn_truncated(translator, written + 1)
        written += len(batch)
        if FLAGS.output == "-":
            sys.stdout.write("".join(line + "\n" for line in out))
            sys.stdout.flush()
        else:
            kept += out
    if FLAGS.output != "-":
        corpus.write_lines(FLAGS.output, kept)


if __name__ == "__main__":
    run_main(main)
