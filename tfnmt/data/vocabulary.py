"""Trains SentencePiece vocabularies with the ids and control symbols tfnmt expects."""

import os
import tempfile

from tfnmt.data import corpus
from tfnmt.data.tokenizer import CONTROL_SYMBOLS
from tfnmt.errors import UserError


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
