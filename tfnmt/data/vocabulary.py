"""Trains SentencePiece vocabularies with the ids and control symbols tfnmt expects."""

import os
import tempfile

from tfnmt.core.errors import UserError
from tfnmt.core.files import replacing
from tfnmt.data import corpus
from tfnmt.data.tokenizer import CONTROL_SYMBOLS


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
        # The model names the prefix it was given, not the temporary one: the same inputs and
        # settings give the same bytes (a run resumes only with the vocabulary it began with).
        model = _read_model(f"{tmp_prefix}.model")
        model.trainer_spec.model_prefix = model_prefix
        with open(f"{tmp_prefix}.model", "wb") as f:
            f.write(model.SerializeToString(deterministic=True))
        for ext in ("model", "vocab"):
            os.replace(f"{tmp_prefix}.{ext}", f"{model_prefix}.{ext}")
    return f"{model_prefix}.model"


def _read_model(path):
    from sentencepiece import sentencepiece_model_pb2 as spm_pb

    model = spm_pb.ModelProto()
    with open(path, "rb") as f:
        model.ParseFromString(f.read())
    return model


def same_vocabulary(a, b):
    """Whether two SentencePiece model files are one vocabulary: equal but for the paths they
    were trained from and to (trainer_spec's input and model_prefix), which say where, not how,
    text is split. A file that is not a model is compared byte for byte."""
    def content(path):
        try:
            model = _read_model(path)
        except Exception:  # protobuf's DecodeError and friends: not a model
            with open(path, "rb") as f:
                return f.read()
        model.trainer_spec.ClearField("input")
        model.trainer_spec.ClearField("model_prefix")
        return model.SerializeToString(deterministic=True)
    return content(a) == content(b)


def convert_vocab(model_path, model_prefix):
    """Rewrites an existing SentencePiece model with the ids tfnmt expects: its pad, unk, bos and
    eos pieces moved to ids 0-3 (added as control pieces where the model has none) and tfnmt's
    control symbols added; every other piece keeps its text, type and score, so text splits
    into the same pieces as before, only their ids change. Writes <prefix>.model/.vocab."""
    from sentencepiece import sentencepiece_model_pb2 as spm_pb

    if not os.path.isfile(model_path):
        raise UserError(f"SentencePiece model {model_path} does not exist.")
    model = spm_pb.ModelProto()
    try:
        with open(model_path, "rb") as f:
            model.ParseFromString(f.read())
    except Exception:  # protobuf's DecodeError and friends
        raise UserError(f"{model_path} is not a SentencePiece model.") from None
    spec, kind = model.trainer_spec, spm_pb.ModelProto.SentencePiece
    if not model.pieces:
        raise UserError(f"{model_path} is not a SentencePiece model.")
    names = [spec.pad_piece or "<pad>", spec.unk_piece or "<unk>", spec.bos_piece or "<s>",
             spec.eos_piece or "</s>"]
    by_text = {p.piece: p for p in model.pieces}
    if names[1] not in by_text:
        raise UserError(f"{model_path} has no unknown piece {names[1]!r}.")
    first = []
    for name in names:
        piece = kind()
        if name in by_text:
            piece.CopyFrom(by_text[name])
        else:
            piece.piece, piece.score, piece.type = name, 0.0, kind.CONTROL
        first.append(piece)
    rest = [p for p in model.pieces if p.piece not in names]
    for symbol in CONTROL_SYMBOLS:
        if symbol not in by_text:
            rest.append(kind(piece=symbol, score=0.0, type=kind.CONTROL))
    del model.pieces[:]
    model.pieces.extend(first + rest)
    spec.pad_id, spec.unk_id, spec.bos_id, spec.eos_id = 0, 1, 2, 3
    spec.pad_piece, spec.unk_piece, spec.bos_piece, spec.eos_piece = names
    spec.vocab_size = len(model.pieces)
    os.makedirs(os.path.dirname(os.path.abspath(model_prefix)), exist_ok=True)
    vocab = "".join(f"{p.piece}\t{p.score:g}\n" for p in model.pieces)
    with replacing(f"{model_prefix}.model") as tmp:
        with open(tmp, "wb") as f:
            f.write(model.SerializeToString())
        corpus.write_atomic(f"{model_prefix}.vocab", vocab)
    return f"{model_prefix}.model"
