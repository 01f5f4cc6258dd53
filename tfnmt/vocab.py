"""Trains a SentencePiece vocabulary: python -m tfnmt.vocab --input=a.en,a.de --model_prefix=..."""

import os
import tempfile

from absl import flags

from tfnmt.data import corpus
from tfnmt.data.tokenizer import CONTROL_SYMBOLS
from tfnmt.errors import UserError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_list("input", None, "Text files to train on (one joint model over all of them).")
flags.DEFINE_string("model_prefix", None, "Output prefix: writes <prefix>.model and <prefix>.vocab.")
flags.DEFINE_integer("vocab_size", 8000, "Number of pieces.")
flags.DEFINE_string("model_type", "unigram", "unigram or bpe.")
flags.DEFINE_float("character_coverage", 1.0, "Character coverage.")
flags.DEFINE_integer("input_sentence_size", 2_000_000, "Sentences sampled for training.")
flags.DEFINE_integer("seed", 1234, "Sampling seed, for reproducible vocabularies.")


def train_vocab(inputs, model_prefix, vocab_size=8000, model_type="unigram",
                character_coverage=1.0, input_sentence_size=2_000_000, seed=1234):
    """Trains a joint SentencePiece model with pad=0 unk=1 bos=2 eos=3 and tfnmt's control symbols.

    The files are written under a temporary name and renamed, so an existing model is never left
    half-written.
    """
    import sentencepiece as spm

    if not inputs:
        raise UserError("--input needs at least one text file.")
    for path in inputs:
        corpus.count_lines(path)
    if model_type not in ("unigram", "bpe"):
        raise UserError(f"model_type must be unigram or bpe, got {model_type!r}.")
    out_dir = os.path.dirname(os.path.abspath(model_prefix))
    os.makedirs(out_dir, exist_ok=True)
    spm.set_random_generator_seed(seed)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_prefix = os.path.join(tmp, "spm")
        try:
            spm.SentencePieceTrainer.train(
                input=inputs, model_prefix=tmp_prefix, vocab_size=vocab_size,
                model_type=model_type, character_coverage=character_coverage,
                input_sentence_size=input_sentence_size, shuffle_input_sentence=True,
                pad_id=0, unk_id=1, bos_id=2, eos_id=3,
                control_symbols=list(CONTROL_SYMBOLS), num_threads=2, minloglevel=2)
        except RuntimeError as e:
            raise UserError(f"SentencePiece training failed: {str(e).splitlines()[-1]}") from None
        for ext in ("model", "vocab"):
            os.replace(f"{tmp_prefix}.{ext}", f"{model_prefix}.{ext}")
    return f"{model_prefix}.model"


def main(argv):
    del argv
    if not FLAGS.input or not FLAGS.model_prefix:
        raise UserError("--input and --model_prefix are required.")
    path = train_vocab(FLAGS.input, FLAGS.model_prefix, FLAGS.vocab_size, FLAGS.model_type,
                       FLAGS.character_coverage, FLAGS.input_sentence_size, FLAGS.seed)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_main(main)
