import numpy as np
import pytest
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.core.errors import UserError
from tfnmt.data import shortlist
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.decoding import search
from tfnmt.decoding.iterative import hybrid_regressive_decode
from tfnmt.decoding.parallel import nat_translate, teacher_scores
from tfnmt.models import build_model


def test_dice_ranking_by_hand():
    # c(6) = 2 pairs; c(10) = 2, c(11) = c(12) = 1; (6,10) (6,11) (6,12) co-occur once each:
    # Dice 2/4 for 10 against 2/3 for 11 and 12, so 6 lists 11, 12 where counts list 10, 11.
    pairs = [([5, 6], [10, 11]), ([5], [10]), ([6, 7], [12])]
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    dice = shortlist.build(sources, targets, 9, per_source=2, frequent=2, ranking="dice")
    count = shortlist.build(sources, targets, 9, per_source=2, frequent=2)
    assert dice["table"][6].tolist() == [11, 12] and count["table"][6].tolist() == [10, 11]
    assert dice["table"][5].tolist() == [10, 11]  # Dice 1 and 2/3
    with pytest.raises(UserError, match="ranking must be one of count, dice, ibm1"):
        shortlist.build(sources, targets, 9, ranking="alignment")


def test_ibm1_one_em_pass_by_hand():
    # Pair ([5, 6], [10]): 10 shares 1/3 with 5, 6 and NULL; pair ([5], [10, 11]): 10 and 11
    # each share 1/2 with 5 and NULL. Counts for 5: 10 -> 1/3 + 1/2, 11 -> 1/2: p = 5/8, 3/8.
    keys = np.array([5 << 32 | 10, 5 << 32 | 11, 6 << 32 | 10], np.int64)
    p = shortlist.ibm1([[5, 6], [5]], [[10], [10, 11]], keys, iterations=1)
    np.testing.assert_allclose(p, [5 / 8, 3 / 8, 1.0])


def test_ibm1_equals_a_dense_em_and_ranks_by_it():
    rng = np.random.default_rng(3)
    sources = [rng.integers(4, 12, rng.integers(1, 6)).tolist() for _ in range(40)]
    targets = [rng.integers(4, 15, rng.integers(1, 6)).tolist() for _ in range(40)]
    prob = np.ones([13, 15])  # row 12: NULL; every pair starts equal, as in the sparse code
    for _ in range(4):
        counts = np.zeros_like(prob)
        for source, target in zip(sources, targets):
            rows = source + [12]
            for t in target:
                share = prob[rows, t] / prob[rows, t].sum()
                np.add.at(counts, (rows, t), share)
        seen = counts > 0
        totals = np.maximum(counts.sum(1, keepdims=True), 1e-30)  # rows never seen: 0 / 0
        prob = np.where(seen, counts / totals, 1.0)
    built = shortlist.build(sources, targets, 12, per_source=3, frequent=0, ranking="ibm1")
    for s in set(sum(sources, [])):
        listed = built["table"][s]
        observed = np.nonzero(seen[s])[0]
        best = observed[np.lexsort((observed, -prob[s, observed]))][:3]
        assert listed[:len(best)].tolist() == best.tolist()
    keys = np.array([s << 32 | t for s in range(12) for t in range(15) if seen[s, t]])
    np.testing.assert_allclose(shortlist.ibm1(sources, targets, keys, iterations=4),
                               [prob[k >> 32, k & 0xFFFFFFFF] for k in keys], rtol=1e-12)


@pytest.mark.parametrize("listed,size", [(1, 256), (252, 256), (253, 512), (600, 1024),
                                         (1100, 2048), (3000, 4096), (5000, 8000)])
def test_the_union_is_padded_to_few_sizes(listed, size):
    """256 * 2**k ids (or all V): few compiled programs per source width."""
    lists = {"table": np.full([10, 1], 4, np.int32),
             "frequent": np.arange(4, 4 + listed, dtype=np.int32)}
    ids = shortlist.union(lists, np.array([[5, EOS_ID]]), 8000).numpy()
    assert len(ids) == size == shortlist.padded_size(4 + listed, 8000)  # + PAD UNK BOS EOS
    if size < 8000:
        assert set(ids[ids != PAD_ID]) == set(range(1, 4 + listed))
    else:
        assert ids.tolist() == list(range(8000))


def test_the_translators_graph_union_is_the_union():
    """The Translator computes a batch's union in one traced graph (not eager ops): the same
    ids as shortlist.union for batches of every shape, a small union and the whole vocabulary."""
    from tfnmt.core.config import DecodeConfig
    from tfnmt.inference.translator import Translator

    model = build_model(ModelConfig.from_shape("tiny", vocab_size=600, dropout=0.0))
    rng = np.random.default_rng(0)
    for frequent in (5, 500):
        lists = {"table": rng.integers(4, 600, [600, 3]).astype(np.int32),
                 "frequent": np.arange(4, 4 + frequent, dtype=np.int32)}
        translator = Translator(model, None, None, DecodeConfig(shortlist=True), 16,
                                shortlist=lists)
        for shape in ([1, 5], [4, 9], [2, 16]):
            source = rng.integers(4, 600, shape).astype(np.int32)
            np.testing.assert_array_equal(translator.vocab_ids(source).numpy(),
                                          shortlist.union(lists, source, 600).numpy())
        assert len(translator.vocab_ids(source)) == (256 if frequent == 5 else 600)


def test_build_by_hand_and_the_union_of_a_batch(tmp_path):
    # Co-occurrence counts: (5,10) 2, (5,11) 1, (6,10) (6,11) (6,12) (7,12) 1; targets 10 x2.
    pairs = [([5, 6], [10, 11]), ([5], [10]), ([6, 7], [12])]
    built = shortlist.build([s for s, _ in pairs], [t for _, t in pairs], 9, per_source=2,
                            frequent=2)
    assert built["table"][5].tolist() == [10, 11]
    assert built["table"][6].tolist() == [10, 11]  # ties go to the smaller id
    assert built["table"][7].tolist() == [12, 12]  # one listed target, repeated
    assert built["table"][0].tolist() == [10, 11]  # never seen: the most frequent targets
    assert built["frequent"].tolist() == [10, 11]
    ids = shortlist.union(built, np.array([[7, EOS_ID, PAD_ID]]), 300).numpy()
    assert ids[:7].tolist() == [0, 1, 2, 3, 10, 11, 12] and len(ids) == shortlist.BUCKET
    assert not ids[7:].any()  # padded with PAD, which is never generated
    assert shortlist.union(built, np.array([[7]]), 200).numpy().tolist() == list(range(200))
    path = shortlist.save(str(tmp_path), built, "2 by count")
    loaded = shortlist.load(str(tmp_path))
    assert path.endswith("shortlist.npz") and (loaded["table"] == built["table"]).all()
    assert sorted(loaded) == ["frequent", "table"]
    assert shortlist.settings(str(tmp_path)) == "2 by count"
    with pytest.raises(UserError, match="python -m tfnmt.shortlist"):
        shortlist.load(str(tmp_path / "none"))


def test_coverage_by_hand():
    # Source piece 5 lists 10, 11; 6 lists 12; 13 is always kept. Sentence 1 ([5] -> [10, 12])
    # has 12 outside its union {0-3, 13, 10, 11}; sentence 2 ([6] -> [12, 13, 12]) has none.
    # Decoded together they share {0-3, 10-13}: nothing is outside.
    lists = {"table": np.array([[13, 13]] * 5 + [[10, 11], [12, 12]], np.int32),
             "frequent": np.array([13], np.int32)}
    alone = shortlist.coverage(lists, [[5], [6]], [[10, 12], [12, 13, 12]], 300)
    assert alone == {"sentences": 2, "mean_union": 6.5, "mean_padded": 256.0,
                     "sentences_outside": 1, "pieces_outside_percent": 20.0}
    together = shortlist.coverage(lists, [[5], [6]], [[10, 12], [12, 13, 12]], 200, 2)
    assert together == {"sentences": 2, "mean_union": 8.0, "mean_padded": 200.0,
                        "sentences_outside": 0, "pieces_outside_percent": 0.0}


def test_greedy_over_a_shortlist_holding_the_full_searchs_tokens_picks_them():
    """If the shortlist holds every token the full greedy search chose, arg-max over it picks
    the same ones; their log-probabilities, normalised over fewer tokens, are higher."""
    model = build_model(ModelConfig.from_shape("tiny", vocab_size=600, dropout=0.0))
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, 11, EOS_ID, PAD_ID]])
    full = search.decode(model, source, 8, beam_size=1, max_length_a=0.0, max_length_b=8)
    chosen = np.unique(full["ids"].numpy())
    others = np.random.default_rng(0).choice(np.setdiff1d(np.arange(4, 600), chosen), 100,
                                             replace=False)
    vocab_ids = np.concatenate([[0, 1, 2, 3], np.setdiff1d(chosen, [0, 1, 2, 3]), others])
    vocab_ids = np.pad(vocab_ids, (0, 256 - len(vocab_ids))).astype(np.int32)
    fn = tf.function(lambda s, v: search.decode(model, s, 8, beam_size=1, max_length_a=0.0,
                                                   max_length_b=8, vocab_ids=v),
                     jit_compile=True)
    short = fn(source, tf.constant(vocab_ids))
    np.testing.assert_array_equal(short["ids"].numpy(), full["ids"].numpy())
    assert (short["scores"].numpy() >= full["scores"].numpy() - 1e-5).all()
    # Beam search runs over the shortlist too, and emits only its ids.
    beams = search.decode(model, source, 8, beam_size=3, alpha=0.6, max_length_a=0.0,
                            max_length_b=8, vocab_ids=tf.constant(vocab_ids))
    assert np.isin(beams["ids"].numpy(), vocab_ids).all()


def subset_holding(ids, vocab_size, extra, size, seed=0):
    """Special ids, the given ids, `extra` random others, PAD-padded to `size`."""
    chosen = np.setdiff1d(np.unique(ids), [0, 1, 2, 3])
    pool = np.setdiff1d(np.arange(4, vocab_size), chosen)
    others = np.random.default_rng(seed).choice(pool, min(extra, len(pool)), replace=False)
    vocab_ids = np.concatenate([[0, 1, 2, 3], chosen, others])
    return tf.constant(np.pad(vocab_ids, (0, size - len(vocab_ids))).astype(np.int32))


def test_nat_over_a_shortlist_holding_its_tokens_picks_them():
    """One length (no candidates to re-rank): per position the arg-max over a shortlist that
    holds the full pass's choices is the same token, with a higher log-probability."""
    model = build_model(ModelConfig.from_shape("tiny", architecture="nart", vocab_size=600,
                                               dropout=0.0, length_offset=1.0))
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, 11, EOS_ID, PAD_ID]])
    full = nat_translate(model, source, 8)
    vocab_ids = subset_holding(full["ids"].numpy(), 600, 100, 256)
    short = tf.function(lambda s, v: nat_translate(model, s, 8, vocab_ids=v),
                        jit_compile=True)(source, vocab_ids)
    np.testing.assert_array_equal(short["ids"].numpy(), full["ids"].numpy())
    assert (short["scores"].numpy() >= full["scores"].numpy() - 1e-5).all()
    assert (short["scores"].numpy() > full["scores"].numpy()).any()


def test_hrt_over_a_shortlist_holding_its_tokens_picks_them():
    """Skip-AT (beam 1) and the Skip-CMLM fill over a shortlist that holds the full decode's
    tokens choose them again; a smaller shortlist emits only its own ids."""
    model = build_model(ModelConfig.from_shape("tiny", vocab_size=60, dropout=0.0))
    source = tf.constant([[8, 9, 10, 11, 3, 0], [12, 13, 3, 0, 0, 0]])
    full = hybrid_regressive_decode(model, source, 12, 2, 4, 5, beam_size=1, n_nat=1)
    used = np.concatenate([full["ids"].numpy().ravel(), full["skip_ids"].numpy().ravel()])
    vocab_ids = subset_holding(used, 60, 8, 40)
    short = hybrid_regressive_decode(model, source, 12, 2, 4, 5, beam_size=1, n_nat=1,
                                     vocab_ids=vocab_ids)
    np.testing.assert_array_equal(short["ids"].numpy(), full["ids"].numpy())
    np.testing.assert_array_equal(short["skip_ids"].numpy(), full["skip_ids"].numpy())
    narrow = tf.constant([0, 1, 2, 3, 20, 21, 22, 23], tf.int32)
    beams = hybrid_regressive_decode(model, source, 12, 2, 4, 5, beam_size=2, n_nat=1,
                                     vocab_ids=narrow)
    assert np.isin(beams["ids"].numpy(), narrow.numpy()).all()


def test_the_nat_rescorer_scores_over_the_union():
    """A shortlist narrows the rescorer's softmax too: the candidates' ids are the union's, and
    the AT rescorer's score of the chosen one is its log-probability normalised over the
    union's ids (the PAD copies that fill it excluded), by a direct numpy computation on its
    full logits; over a subset it is at least the full-vocabulary score."""
    model = build_model(ModelConfig.from_shape("tiny", architecture="nart", vocab_size=600,
                                               dropout=0.0, length_offset=1.0))
    rescorer = build_model(ModelConfig.from_shape("tiny", vocab_size=600, dropout=0.0))
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, 11, EOS_ID, PAD_ID]])
    vocab_ids = subset_holding(np.arange(4, 60), 600, 60, 256)
    out = nat_translate(model, source, 8, halfwidth=1, rescorer=rescorer, vocab_ids=vocab_ids)
    ids = out["ids"][:, 0].numpy()
    assert np.isin(out["ids"].numpy(), vocab_ids.numpy()).all()
    logits = rescorer({"source": source, "target": tf.constant(ids)}).numpy().astype(np.float64)
    listed = np.unique(vocab_ids.numpy())  # the union's ids, each once
    normaliser = np.log(np.exp(logits[..., listed]).sum(-1))
    chosen = np.take_along_axis(logits, ids[..., None], -1)[..., 0] - normaliser
    np.testing.assert_allclose(out["scores"][:, 0].numpy(),
                               np.where(ids != PAD_ID, chosen, 0.0).sum(1), rtol=1e-5)
    full = teacher_scores(rescorer, source, out["ids"][:, 0]).numpy()
    assert (out["scores"][:, 0].numpy() >= full - 1e-5).all()
    assert (out["scores"][:, 0].numpy() > full + 1e-3).all()


def test_the_unions_padding_changes_no_score():
    """The PAD copies that fill a union to its size are no tokens: one shortlist padded to two
    sizes gives the same ids and scores (greedy, beam and the NAT)."""
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, 11, EOS_ID, PAD_ID]])
    at = build_model(ModelConfig.from_shape("tiny", vocab_size=600, dropout=0.0))
    nat = build_model(ModelConfig.from_shape("tiny", architecture="nart", vocab_size=600,
                                             dropout=0.0, length_offset=1.0))
    decoders = {"greedy": lambda v: search.decode(at, source, 8, beam_size=1, max_length_a=0.0,
                                                  max_length_b=8, vocab_ids=v),
                "beam": lambda v: search.decode(at, source, 8, beam_size=3, alpha=0.6,
                                                max_length_a=0.0, max_length_b=8, vocab_ids=v),
                "nat": lambda v: nat_translate(nat, source, 8, vocab_ids=v),
                "nat rescored": lambda v: nat_translate(nat, source, 8, halfwidth=1,
                                                        rescorer=at, vocab_ids=v)}
    for name, decode in decoders.items():
        tight, loose = (decode(subset_holding([], 600, 60, size)) for size in (64, 512))
        np.testing.assert_array_equal(tight["ids"].numpy(), loose["ids"].numpy(), err_msg=name)
        np.testing.assert_allclose(tight["scores"].numpy(), loose["scores"].numpy(), rtol=1e-5,
                                   atol=1e-5, err_msg=name)
