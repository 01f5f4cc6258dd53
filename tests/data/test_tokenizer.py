import pytest
import tensorflow as tf

from tfnmt.core.errors import UserError
from tfnmt.data.tokenizer import BOS_ID, CONTROL_SYMBOLS, EOS_ID, load_tokenizer, PAD_ID, Tokenizer


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


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_a_model_with_other_ids_is_explained_then_converted(tmp_path, multi30k_sample,
                                                            model_type):
    import sentencepiece as spm

    from tfnmt.data.vocabulary import convert_vocab

    prefix = str(tmp_path / model_type)
    # SentencePiece's own defaults: unk 0, bos 1, eos 2, no pad.
    spm.SentencePieceTrainer.train(input=multi30k_sample["en"], model_prefix=prefix,
                                   vocab_size=200, model_type=model_type, minloglevel=2)
    with pytest.raises(UserError, match=r"ids pad -?\d+ unk 0 bos 1 eos 2.*--convert="):
        Tokenizer(prefix + ".model")
    converted = Tokenizer(convert_vocab(prefix + ".model", str(tmp_path / "converted")))
    assert [converted.piece_id(p) for p in ("<pad>", "<unk>", "<s>", "</s>")] == [0, 1, 2, 3]
    assert all(converted.piece_id(s) > 3 for s in CONTROL_SYMBOLS)
    original = spm.SentencePieceProcessor(model_file=prefix + ".model")
    sentences = ["A man is running.", "Two dogs play in the snow!", "Zebra xylophone qu?"]
    ids = converted.tokenize(tf.constant(sentences)).to_list()
    # The same pieces as before, only their ids differ; the text comes back.
    assert [converted.pieces(row) for row in ids] == [
        [original.id_to_piece(i) for i in original.encode(s)] for s in sentences]
    assert [s.decode() for s in converted.detokenize(tf.ragged.constant(ids)).numpy()] == [
        original.decode(original.encode(s)) for s in sentences]


def test_a_vocabulary_trained_again_is_the_same_and_named_by_its_own_prefix(tmp_path,
                                                                            reverse_task):
    """Training on the same text gives the same bytes (the file named a random temporary prefix
    before), and the same vocabulary wherever it was written; other settings give another."""
    import os

    from sentencepiece import sentencepiece_model_pb2 as spm_pb

    from tfnmt.data.vocabulary import same_vocabulary, train_vocab

    text = [reverse_task["train.src"]]
    first = train_vocab(text, str(tmp_path / "spm"), vocab_size=24)
    with open(first, "rb") as f:
        first_bytes = f.read()
    model = spm_pb.ModelProto()
    model.ParseFromString(first_bytes)
    assert model.trainer_spec.model_prefix == str(tmp_path / "spm")
    os.remove(first)
    with open(train_vocab(text, str(tmp_path / "spm"), vocab_size=24), "rb") as f:
        assert f.read() == first_bytes
    elsewhere = train_vocab(text, str(tmp_path / "other" / "spm"), vocab_size=24)
    assert same_vocabulary(first, elsewhere) and same_vocabulary(first, reverse_task["vocab"])
    assert not same_vocabulary(first, train_vocab(text, str(tmp_path / "v25"), vocab_size=25))
    (tmp_path / "not_a_model").write_bytes(b"\xff\x00 not a protobuf")
    assert not same_vocabulary(first, str(tmp_path / "not_a_model"))
