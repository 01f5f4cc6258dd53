"""In-graph SentencePiece tokenization (tensorflow_text), usable in tf.data and SavedModels."""

import os

import tensorflow as tf
import tensorflow_text as tf_text

from tfnmt.core.errors import UserError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# Reserved control symbols, never produced from text: HRT and CMLM use them later.
CONTROL_SYMBOLS = ("<mask>", "<bos_2>", "<bos_3>", "<bos_4>")


_LOADED = {}


def load_tokenizer(model_path: str) -> "Tokenizer":
    """One Tokenizer per model per process (a SentencePiece resource per model, not per caller)."""
    with open(model_path, "rb") if os.path.isfile(model_path) else _missing(model_path) as f:
        key = hash(f.read())
    if key not in _LOADED:
        _LOADED[key] = Tokenizer(model_path)
    return _LOADED[key]


def _missing(model_path):
    raise UserError(f"SentencePiece model {model_path} does not exist.")


class Tokenizer(tf.Module):
    """Wraps a SentencePiece model proto; strings <-> int32 ids, all in TensorFlow ops."""

    def __init__(self, model_path: str):
        super().__init__()
        if not os.path.isfile(model_path):
            raise UserError(f"SentencePiece model {model_path} does not exist.")
        with open(model_path, "rb") as f:
            self.model_proto = f.read()
        try:
            self._sp = tf_text.SentencepieceTokenizer(model=self.model_proto, out_type=tf.int32)
            self.vocab_size = int(self._sp.vocab_size())
        except Exception:  # tensorflow_text raises an opaque InternalError on a bad proto
            raise UserError(f"{model_path} is not a SentencePiece model.") from None
        ids = [int(i) for i in self._sp.string_to_id(["<pad>", "<unk>", "<s>", "</s>"]).numpy()]
        if ids != [PAD_ID, UNK_ID, BOS_ID, EOS_ID]:
            raise UserError(f"{model_path} has ids pad {ids[0]} unk {ids[1]} bos {ids[2]} eos "
                            f"{ids[3]}; tfnmt needs 0 1 2 3: convert it with python -m "
                            f"tfnmt.vocab --convert={model_path} --model_prefix=<new prefix> "
                            "(same pieces, new ids).")

    def piece_id(self, piece: str) -> int:
        return int(self._sp.string_to_id(piece).numpy())

    def pieces(self, ids) -> list:
        """ids -> their SentencePiece pieces as Python strings (for plots)."""
        return [p.decode("utf-8") for p in self._sp.id_to_string(tf.constant(ids)).numpy()]

    def tokenize(self, sentences: tf.Tensor) -> tf.RaggedTensor:
        """[batch] tf.string -> ragged [batch, (len)] int32, without BOS/EOS."""
        return self._sp.tokenize(sentences)

    def detokenize(self, ids) -> tf.Tensor:
        """Ragged or dense ids (stops at the first EOS, drops PAD/BOS) -> [batch] tf.string."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
            keep = tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=1, exclusive=True) == 0
            keep &= ids > EOS_ID
            ids = tf.ragged.boolean_mask(ids, keep)
        return self._sp.detokenize(ids)
