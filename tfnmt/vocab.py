"""Trains a SentencePiece vocabulary: python -m tfnmt.vocab --input=a.en,a.de --model_prefix=...
or converts an existing one to tfnmt's ids: python -m tfnmt.vocab --convert=x.model --model_prefix=..."""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

from absl import flags

from tfnmt.core.errors import run_main, UserError
from tfnmt.data.corpus import check_output_path
from tfnmt.data.vocabulary import convert_vocab, train_vocab

FLAGS = flags.FLAGS
flags.DEFINE_list("input", None, "Text files to train on (one joint model over all of them).")
flags.DEFINE_string("model_prefix", None, "Output prefix: writes <prefix>.model and <prefix>.vocab.")
flags.DEFINE_integer("vocab_size", 8000, "Number of pieces.")
flags.DEFINE_string("model_type", "unigram", "unigram or bpe.")
flags.DEFINE_float("character_coverage", 1.0, "Character coverage.")
flags.DEFINE_integer("input_sentence_size", 2_000_000, "Sentences sampled for training.")
flags.DEFINE_integer("seed", 1234, "Sampling seed, for reproducible vocabularies.")
flags.DEFINE_string("convert", None, "An existing SentencePiece model to rewrite with tfnmt's ids "
                    "(pad 0, unk 1, bos 2, eos 3, control symbols added; the same pieces).")


def main(argv):
    del argv
    if FLAGS.convert:
        if not FLAGS.model_prefix:
            raise UserError("--model_prefix is required.")
        check_output_path(FLAGS.model_prefix + ".model", [FLAGS.convert])
        print(f"wrote {convert_vocab(FLAGS.convert, FLAGS.model_prefix)}")
        return
    if not FLAGS.input or not FLAGS.model_prefix:
        raise UserError("--input and --model_prefix are required.")
    check_output_path(FLAGS.model_prefix + ".model")
    path = train_vocab(FLAGS.input, FLAGS.model_prefix, FLAGS.vocab_size, FLAGS.model_type,
                       FLAGS.character_coverage, FLAGS.input_sentence_size, FLAGS.seed)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_main(main)
