"""Sends sentences to a tensorflow_model_server and prints translations:
python -m tfnmt.client --server=localhost:8501 --model=teacher [--protocol=rest|grpc] < input.txt

"""

from absl import flags

from tfnmt.core.errors import run_main, UserError
from tfnmt.data import corpus
from tfnmt.serving.client import translate

FLAGS = flags.FLAGS
flags.DEFINE_string("server", "localhost:8501", "host:port (8501 REST, 8500 gRPC by default).")
flags.DEFINE_string("model", None, "Model name in the server's model config.")
flags.DEFINE_integer("version", None, "Model version (default: the server's latest).")
flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "Transport.")
flags.DEFINE_string("signature", "translate", "translate (XLA) or translate_plain.")
flags.DEFINE_string("input", "-", "Sentences, one per line ('-': stdin).")
flags.DEFINE_integer("batch_size", 32, "Sentences per request.")
flags.DEFINE_float("timeout", 60.0, "Seconds per request.")
flags.DEFINE_bool("with_scores", False, "Print 'score<TAB>translation'.")


def main(argv):
    del argv
    if not FLAGS.model:
        raise UserError("--model is required.")
    if FLAGS.batch_size < 1:
        raise UserError(f"--batch_size must be at least 1, got {FLAGS.batch_size}.")
    if FLAGS.timeout <= 0:
        raise UserError(f"--timeout must be positive, got {FLAGS.timeout}.")
    lines = list(corpus.iter_stdin_lines()) if FLAGS.input == "-" else \
        corpus.read_lines(FLAGS.input)
    for start in range(0, len(lines), FLAGS.batch_size):
        for text, score in translate(lines[start:start + FLAGS.batch_size], FLAGS.server,
                                     FLAGS.model, FLAGS.protocol, FLAGS.signature, FLAGS.version,
                                     FLAGS.timeout):
            print(f"{score:.4f}\t{text}" if FLAGS.with_scores else text, flush=True)


if __name__ == "__main__":
    run_main(main)
