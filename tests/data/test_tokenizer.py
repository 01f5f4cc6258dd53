import pytest
import tensorflow as tf

from tfnmt.data.tokenizer import BOS_ID, CONTROL_SYMBOLS, EOS_ID, PAD_ID, Tokenizer, load_tokenizer
from tfnmt.errors import UserError


def test_round_trip_and_special_ids(multi30k_sample):
    tok = load_tokenizer(multi30k_sample["vocab"])
    assert tok.vocab_size == 300
    # Control symbols are reserved ids that text never produces.
    ids = [tok.piece_id(s) for s in CONTROL_SYMBOLS]
    assert ids == [4, 5, 6, 7]
    sentences = ["A man is running.", "Zwei Hunde spielen im Schnee."]
    ragged = tok.tokenize(tf.constant(sentences))
    assert not set(ragged.flat_values.numpy()) & set(ids + [PAD_ID, BOS_ID, EOS_ID])
    assert [s.decode() for s in tok.detokenize(ragged).numpy()] == sentences


def test_dense_detokenize_stops_at_first_eos(multi30k_sample):
    tok = load_tokenizer(multi30k_sample["vocab"])
    ids = tok.tokenize(tf.constant(["A dog."])).to_list()[0]
    dense = tf.constant([ids + [EOS_ID] + ids + [PAD_ID], [BOS_ID] + ids + [PAD_ID] * (len(ids) + 1)])
    assert [s.decode() for s in tok.detokenize(dense).numpy()] == ["A dog.", "A dog."]


def test_bad_model_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Tokenizer(str(tmp_path / "missing.model"))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="is not a SentencePiece model"):
        Tokenizer(str(bad))
