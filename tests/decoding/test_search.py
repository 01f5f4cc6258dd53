import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import ModelConfig
from tfnmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from tfnmt.decoding import common, search
from tfnmt.decoding.iterative import hybrid_regressive_decode
from tfnmt.models import build_model

A, B = 4, 5
VOCAB = 6
# A prefix tree: node -> probabilities of (EOS, A, B). Greedy takes A, A, EOS (p = .5*.36*.98);
# the best sequence is B, EOS (p = .4 * .9).
TREE = {(): (0.1, 0.5, 0.4), (A,): (0.30, 0.36, 0.34), (B,): (0.9, 0.05, 0.05)}
DEFAULT = (0.98, 0.01, 0.01)


def prob(prefix):
    return dict(zip((EOS_ID, A, B), TREE.get(tuple(prefix), DEFAULT)))


class ToyScorer:
    """Implements the decoding interface; the cache holds each hypothesis' prefix as ids."""

    def __init__(self, depth=8):
        prefixes = [()] + [p for n in range(1, depth) for p in itertools.product((A, B), repeat=n)]
        self.index = {p: i for i, p in enumerate(prefixes)}
        table = np.full((len(prefixes) + 1, VOCAB), -1e4, np.float32)
        children = np.full((len(prefixes) + 1, VOCAB), len(prefixes), np.int32)
        for p, i in self.index.items():
            for token, pr in prob(p).items():
                table[i, token] = math.log(pr)
                if token != EOS_ID and p + (token,) in self.index:
                    children[i, token] = self.index[p + (token,)]
        table[len(prefixes), EOS_ID] = 0.0  # beyond the tree: EOS only
        self.table, self.children = tf.constant(table), tf.constant(children)

    def initial_state(self, source, max_length):
        batch = tf.shape(source)[0]
        return {"cache": {"node": tf.zeros([batch], tf.int32)}, "memory": {"unused": source}}

    def step(self, ids, position, cache, memory):
        child = tf.gather_nd(self.children, tf.stack([cache["node"], ids], 1))
        node = tf.where(position == 0, 0, child)
        return tf.gather(self.table, node), {"node": node}


def brute_force(limit, alpha, k):
    """Every sequence over {A, B} ending in EOS within `limit` tokens, scored as beam search."""
    results = []
    for n in range(limit):
        for body in itertools.product((A, B), repeat=n):
            logp = sum(math.log(prob(body[:i])[t]) for i, t in enumerate(body))
            length = n + 1
            logp += math.log(prob(body)[EOS_ID])  # a forced EOS pays its log-probability too
            results.append((logp / ((5 + length) / 6) ** alpha, list(body) + [EOS_ID]))
    return sorted(results, key=lambda r: -r[0])[:k]


SOURCE = tf.constant([[7, 3]])


@pytest.mark.parametrize("beam_size", [1, 2])
def test_a_hypothesis_cut_at_the_limit_pays_log_p_eos(beam_size):
    # Limit 2: after A (p .5) or B (p .4) only EOS may follow; P(EOS | A) = .30, P(EOS | B) = .9.
    out = search.decode(ToyScorer(), SOURCE, 4, beam_size, 0.0, max_length_a=0.0,
                          max_length_b=2)
    expected = [(math.log(.4) + math.log(.9), [B, EOS_ID]), (math.log(.5) + math.log(.3),
                                                             [A, EOS_ID])]
    if beam_size == 1:
        expected = expected[1:]  # greedy takes A first
    for k, (logp, ids) in enumerate(expected):
        assert out["ids"].numpy()[0, k, :2].tolist() == ids
        np.testing.assert_allclose(out["scores"].numpy()[0, k], logp, rtol=1e-5)


def test_beam_finds_the_best_sequence_greedy_misses():
    scorer = ToyScorer()
    limits = tf.constant([6])
    greedy = search.greedy_search(scorer, SOURCE, 6, limits)
    assert greedy["ids"].numpy()[0, :3].tolist() == [A, A, EOS_ID]
    beam = search.beam_search(scorer, SOURCE, 6, limits, beam_size=2, alpha=0.0)
    assert beam["ids"].numpy()[0, 0, :2].tolist() == [B, EOS_ID]
    np.testing.assert_allclose(beam["scores"].numpy()[0, 0], math.log(0.4 * 0.9), rtol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_exhaustive_beam_equals_brute_force_with_length_penalty(alpha):
    # Within 5 tokens there are 31 sequences and never more than 24 candidates a step: with
    # k = 32 nothing is pruned, so beam search must return exactly the brute-force ranking.
    limit, k = 5, 32
    beam = search.beam_search(ToyScorer(), SOURCE, 6, tf.constant([limit]), k, alpha)
    expected = brute_force(limit, alpha, k)
    assert len(expected) == 31
    got_scores = beam["selection"].numpy()[0][:31]
    np.testing.assert_allclose(got_scores, [s for s, _ in expected], rtol=1e-5)
    lengths = beam["lengths"].numpy()[0]
    # scores are the total log-probabilities: selection times the length penalty.
    penalty = ((5.0 + lengths[:31]) / 6.0) ** alpha
    np.testing.assert_allclose(beam["scores"].numpy()[0][:31], got_scores * penalty, rtol=1e-5)
    for row, (score, ids) in enumerate(expected):
        assert lengths[row] == len(ids)
        # Ties in score may swap order; compare the sequence when its score is unique.
        if sum(abs(s - score) < 1e-6 for s, _ in expected) == 1:
            assert beam["ids"].numpy()[0, row, :len(ids)].tolist() == ids


def test_length_penalty_changes_the_winner():
    # Without penalty B EOS (2 tokens) wins; a strong penalty favours the longer A A EOS only if
    # its normalised score is higher: check the winner equals brute force in both cases.
    for alpha in (0.0, 5.0):
        beam = search.beam_search(ToyScorer(), SOURCE, 6, tf.constant([6]), 8, alpha)
        best = brute_force(6, alpha, 1)[0][1]
        assert beam["ids"].numpy()[0, 0, :len(best)].tolist() == best
    assert brute_force(6, 0.0, 1)[0][1] != brute_force(6, 5.0, 1)[0][1]


def tiny_transformer():
    cfg = ModelConfig.from_shape("tiny", vocab_size=30, dropout=0.0)
    return build_model(cfg)


SOURCES = tf.constant([[5, 6, 7, 8, 9, 3, 0, 0], [10, 3, 0, 0, 0, 0, 0, 0],
                       [11, 12, 13, 14, 15, 16, 17, 3]])


def test_beam_one_equals_greedy():
    model = tiny_transformer()
    limits = common.length_limits(SOURCES, 16, 1.5, 4)
    greedy = search.greedy_search(model, SOURCES, 16, limits)
    beam = search.beam_search(model, SOURCES, 16, limits, beam_size=1, alpha=0.0)
    np.testing.assert_array_equal(beam["ids"].numpy()[:, 0], greedy["ids"].numpy())
    np.testing.assert_allclose(beam["scores"].numpy()[:, 0], greedy["scores"].numpy(), rtol=1e-5)
    assert (greedy["lengths"].numpy() <= limits.numpy()).all()


@pytest.mark.parametrize("beam_size", [1, 3])
def test_xla_equals_eager_traced(beam_size):
    model = tiny_transformer()

    def run(source):
        return search.decode(model, source, 16, beam_size, 0.6, 1.5, 4)

    plain = tf.function(run, jit_compile=False)(SOURCES)
    xla = tf.function(run, jit_compile=True)(SOURCES)
    np.testing.assert_array_equal(xla["ids"].numpy(), plain["ids"].numpy())
    np.testing.assert_array_equal(xla["lengths"].numpy(), plain["lengths"].numpy())
    np.testing.assert_allclose(xla["scores"].numpy(), plain["scores"].numpy(), rtol=1e-4)


def test_n_best_is_sorted_and_respects_limits():
    model = tiny_transformer()
    limits = common.length_limits(SOURCES, 16, 1.0, 1)
    out = search.beam_search(model, SOURCES, 16, limits, beam_size=4, alpha=0.6)
    scores = out["scores"].numpy()
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    assert (out["lengths"].numpy() <= limits.numpy()[:, None]).all()
    ids = out["ids"].numpy()
    for b in range(3):
        for k in range(4):
            n = out["lengths"].numpy()[b, k]
            assert ids[b, k, n - 1] == EOS_ID and not ids[b, k, n:].any()
    assert BOS_ID not in ids and PAD_ID not in ids[:, :, 0]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_min_length_and_limit_give_exact_lengths(beam_size):
    model = tiny_transformer()
    out = search.decode(model, SOURCES, 16, beam_size, 0.6, max_length_a=0.0, max_length_b=9,
                          min_length=9)
    assert (out["lengths"].numpy() == 9).all()


class RowCache:
    """The Transformer seen through the default cache handling: a row per hypothesis,
    gathered after every step (the unoptimised rule the Transformer's ancestry replaces)."""

    def __init__(self, model):
        self.model = model

    def initial_state(self, source, max_length):
        return self.model.initial_state(source, max_length)

    def step(self, ids, position, cache, memory):
        return self.model.step(ids, position, cache, memory)


@pytest.mark.parametrize("xla", [False, True])
def test_beam_keeping_keys_in_place_equals_gathering_rows(xla):
    model = tiny_transformer()
    limits = common.length_limits(SOURCES, 16, 1.5, 4)

    def run(scorer):
        return tf.function(lambda s: search.beam_search(scorer, s, 16, limits, beam_size=4,
                                                        alpha=0.6), jit_compile=xla)(SOURCES)

    in_place, rows = run(model), run(RowCache(model))
    np.testing.assert_array_equal(in_place["ids"].numpy(), rows["ids"].numpy())
    np.testing.assert_allclose(in_place["scores"].numpy(), rows["scores"].numpy(), rtol=1e-5)
    # The search really moved hypotheses between slots (else the two rules cannot differ).
    assert (in_place["ids"].numpy()[:, 0] != in_place["ids"].numpy()[:, 1]).any()


@pytest.mark.parametrize("precision", ["float32", "int8"])
@pytest.mark.parametrize("shortlist", [False, True])
def test_kept_decoding_constants_decode_as_the_per_call_layout(precision, shortlist):
    """A restored model keeps its output table's decoding layout in variables; the beam loop
    and a parallel pass (HRT's fill) then decode exactly as when it is laid out per call."""
    model = tiny_transformer()
    if precision == "float32":
        model.keep_decoding_constants()
    else:
        model = runs.at_precision(model, precision)  # keeps them too
    assert model.kept_variables()
    # A shortlist with PAD copies filling it up (-inf logits) and the [MASK], [BOS_2] ids.
    vocab_ids = tf.constant([0, 1, 2, 3, *range(5, 18), 28, 29, 0, 0]) if shortlist else None

    def decode():
        beam = tf.function(lambda s: search.decode(model, s, 16, 3, 0.6, 1.5, 4,
                                                   vocab_ids=vocab_ids), jit_compile=True)
        hrt = tf.function(lambda s: hybrid_regressive_decode(model, s, 16, 2, 28, 29, 3,
                                                             vocab_ids=vocab_ids),
                          jit_compile=True)
        return beam(SOURCES), hrt(SOURCES)

    kept = decode()
    model.keep_decoding_constants(False)
    assert not model.kept_variables()
    for a, b in zip(kept, decode()):
        np.testing.assert_array_equal(a["ids"].numpy(), b["ids"].numpy())
        np.testing.assert_allclose(a["scores"].numpy(), b["scores"].numpy(), rtol=1e-5,
                                   atol=1e-5)
