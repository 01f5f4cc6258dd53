"""The NAT pieces: uniform copy, the decoder without causal mask, positional attention, the
hint losses, candidate lengths and AT rescoring."""

import numpy as np
import pytest
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.decoding.parallel import (argmax_fill, candidate_lengths, collapse_repeats,
                                     nat_translate, teacher_scores)
from tfnmt.layers.attention import PositionalAttention
from tfnmt.layers.nat_decoder import nat_self_mask, NATDecoderLayer
from tfnmt.methods.hint_nart import alignment_hint, hidden_state_hint
from tfnmt.models import build_model
from tfnmt.models.nat import uniform_copy_indices


def test_uniform_copy_indices_by_hand():
    index = uniform_copy_indices(tf.constant([5, 4, 3, 6, 2]), tf.constant([3, 4, 5, 1, 6]), 6)
    np.testing.assert_array_equal(index.numpy(), [
        [0, 2, 3, 0, 0, 0],   # N < M: t M / N = 0, 1.67, 3.33
        [0, 1, 2, 3, 0, 0],   # N = M: the identity
        [0, 1, 1, 2, 2, 0],   # N > M: 0, 0.6, 1.2, 1.8, 2.4
        [0, 0, 0, 0, 0, 0],   # N = 1
        [0, 0, 1, 1, 1, 1]])  # 0, 0.33, 0.67, 1, 1.33, 1.67 (2 clipped to M - 1 = 1), halves up


def test_decoder_layer_has_no_causal_mask_and_masks_padding():
    layer = NATDecoderLayer(16, 2, 32, dropout=0.0)
    layer.build((None, None, 16))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(1, 5, 16)), tf.float32)
    memory = tf.constant(rng.normal(size=(1, 4, 16)), tf.float32)
    positions = tf.constant(rng.normal(size=(1, 5, 16)), tf.float32)
    mask = nat_self_mask(tf.constant([[True] * 4 + [False]]))

    def run(inputs):
        return layer(inputs, positions, layer.project_memory(memory),
                     tf.ones([1, 1, 4], tf.bool), mask)[0].numpy()

    base = run(x)
    later = run(tf.tensor_scatter_nd_update(x, [[0, 3]], [tf.ones([16])]))
    assert np.abs(later[0, 0] - base[0, 0]).max() > 1e-4  # position 3 reaches position 0
    padded = run(tf.tensor_scatter_nd_update(x, [[0, 4]], [tf.ones([16])]))
    np.testing.assert_allclose(padded[0, :4], base[0, :4], atol=1e-6)  # padding does not


def test_self_mask_can_exclude_the_diagonal():
    mask = nat_self_mask(tf.constant([[True, True, False]]), attend_self=False).numpy()[0]
    np.testing.assert_array_equal(mask, [[0, 1, 0], [1, 0, 0], [1, 1, 0]])


def test_positional_attention_depends_only_on_positions():
    layer = PositionalAttention(16, 2)
    layer.build((None, None, 16))
    rng = np.random.default_rng(1)
    positions = tf.constant(rng.normal(size=(1, 5, 16)), tf.float32)
    mask = tf.ones([1, 5, 5], tf.bool)
    out_a, probs_a = layer(tf.constant(rng.normal(size=(2, 5, 16)), tf.float32), positions, mask)
    out_b, probs_b = layer(tf.constant(rng.normal(size=(2, 5, 16)), tf.float32), positions, mask)
    np.testing.assert_allclose(probs_a.numpy(), probs_b.numpy(), atol=1e-6)
    assert np.abs(out_a.numpy() - out_b.numpy()).max() > 1e-3


def _np_hidden_hint(student, teacher, lengths, gamma_st, gamma_tr):
    out = []
    for b, n in enumerate(lengths):
        total = 0.0
        for s_layer, t_layer in zip(student, teacher):
            for s in range(n):
                for t in range(s + 1, n):
                    def cos(h):
                        return h[b, s] @ h[b, t] / np.linalg.norm(h[b, s]) / np.linalg.norm(h[b, t])
                    d_st, d_tr = cos(s_layer), cos(t_layer)
                    if d_st >= gamma_st and d_tr <= gamma_tr:
                        total += -np.log(1 - d_st)
        out.append(2 * total / ((n - 1) * n * len(student)) if n > 1 else 0.0)
    return np.array(out)


def test_hidden_state_hint_equals_numpy_with_thresholds():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(3, 6, 8))
    # Shared components make some cosines large, so both thresholds matter.
    student = [base + rng.normal(size=base.shape) * 0.6 for _ in range(2)]
    teacher = [rng.normal(size=base.shape) for _ in range(2)]
    lengths = [6, 4, 1]
    values = {}
    for gamma_st, gamma_tr in ((0.3, 0.2), (-1.0, 1.0), (0.5, -0.1)):
        got = hidden_state_hint([tf.constant(h, tf.float32) for h in student],
                                [tf.constant(h, tf.float32) for h in teacher],
                                tf.constant(lengths), gamma_st, gamma_tr).numpy()
        want = _np_hidden_hint(student, teacher, lengths, gamma_st, gamma_tr)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        values[gamma_st, gamma_tr] = got
    # The thresholds select different pairs (-log(1 - d) < 0 for d < 0, so no ordering).
    assert len({round(float(v[0]), 5) for v in values.values()}) == 3
    assert values[-1.0, 1.0][2] == 0.0  # one token: no pairs


def test_alignment_hint_equals_numpy_kl_per_head():
    rng = np.random.default_rng(3)

    def attention(source_len):
        logits = rng.normal(size=(2, 3, 5, 4)) * 2
        logits[..., source_len:] = -1e9
        p = np.exp(logits - logits.max(-1, keepdims=True))
        return p / p.sum(-1, keepdims=True)

    teacher = [attention(3), attention(3)]
    student = [attention(3), attention(3)]
    lengths = [5, 2]
    got = alignment_hint([tf.constant(a, tf.float32) for a in teacher],
                         [tf.constant(a, tf.float32) for a in student], tf.constant(lengths))
    want = []
    for b, n in enumerate(lengths):
        total = 0.0
        for t_layer, s_layer in zip(teacher, student):
            for h in range(3):
                for t in range(n):
                    p, q = t_layer[b, h, t, :3], s_layer[b, h, t, :3]
                    total += np.sum(p * np.log(p / q))
        want.append(total / (n * 2 * 3))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4)


def test_candidate_lengths_and_argmax_fill():
    lengths = candidate_lengths(tf.constant([6, 3, 5]), 2, 7).numpy()
    # Windows that would cross 2 or the limit move inside: no length twice.
    np.testing.assert_array_equal(lengths, [[3, 4, 5, 6, 7], [2, 3, 4, 5, 6], [3, 4, 5, 6, 7]])
    assert candidate_lengths(tf.constant([3]), 2, 4).numpy().tolist() == [[2, 3, 4, 4, 4]]
    logits = np.zeros([1, 4, 8], np.float32)
    logits[0, :, EOS_ID] = 5.0  # EOS is the favourite everywhere ...
    logits[0, :, 6] = 1.0
    ids, logp, _ = argmax_fill(tf.constant(logits), tf.constant([3]))
    # ... but only the last real position may hold it; padding after.
    np.testing.assert_array_equal(ids.numpy(), [[6, 6, EOS_ID, PAD_ID]])
    assert logp.numpy()[0, 3] == 0.0
    # Over a shortlist: the logits' columns stand for its ids; a column is an index into it.
    ids, _, columns = argmax_fill(tf.constant(logits[..., 1:]), tf.constant([3]),
                                  tf.range(1, 8))
    np.testing.assert_array_equal(ids.numpy(), [[6, 6, EOS_ID, PAD_ID]])
    np.testing.assert_array_equal(columns.numpy()[0, :3], [5, 5, EOS_ID - 1])


def test_teacher_scores_equal_cached_step_by_step_decoding():
    teacher = build_model(ModelConfig.from_shape("tiny", vocab_size=20, dropout=0.0))
    source = tf.constant([[5, 6, 7, EOS_ID], [8, 9, EOS_ID, PAD_ID]])
    candidates = tf.constant([[10, 11, 12, EOS_ID], [13, EOS_ID, PAD_ID, PAD_ID]])
    got = teacher_scores(teacher, source, candidates).numpy()
    state = teacher.initial_state(source, 4)
    cache, previous, total = state["cache"], tf.fill([2], 2), np.zeros(2)
    for i in range(4):
        logits, cache = teacher.step(previous, i, cache, state["memory"])
        logp = tf.nn.log_softmax(logits).numpy()
        for b in range(2):
            if candidates[b, i] != PAD_ID:
                total[b] += logp[b, candidates[b, i]]
        previous = candidates[:, i]
    np.testing.assert_allclose(got, total, rtol=1e-5)
    # Several candidates per sentence: the source is encoded once and shared.
    both = teacher_scores(teacher, source[:1], tf.concat([candidates, candidates], 0)[::2])
    np.testing.assert_allclose(both.numpy(), [got[0], got[0]], rtol=1e-5)


class _FakeNAT:
    """Prefers token 10 at every position; EOS is poor everywhere."""

    def predicted_lengths(self, source, encoded, source_mask):
        return tf.reduce_sum(tf.cast(source != PAD_ID, tf.int32), axis=1)

    def length_bound(self, source_width, halfwidth):
        return None

    def pass_constants(self, vocab_ids=None):
        return None

    def encode(self, source):
        return tf.zeros(tf.concat([tf.shape(source), [4]], 0)), source != PAD_ID

    def nat_decode(self, source, encoded, source_mask, lengths, width, constants=None):
        logits = np.full([20], -3.0, np.float32)
        logits[10], logits[EOS_ID] = 3.0, -2.0
        return tf.broadcast_to(logits, [tf.shape(source)[0], width, 20])


class FakeAT:
    """An AT rescorer that likes `word`, and EOS only at position `eos_at`: the candidate of
    length eos_at + 1 made of `word`s is its best."""

    def __init__(self, vocab=20, word=10, eos_at=3):
        self.vocab, self.word, self.eos_at = vocab, word, eos_at

    def encode(self, source):
        return tf.zeros(tf.concat([tf.shape(source), [4]], 0)), source != PAD_ID

    def pass_constants(self, vocab_ids=None):
        return None

    def decode(self, decoder_input, encoded, source_mask, constants=None):
        width = decoder_input.shape[1]
        logits = np.full([width, self.vocab], -3.0, np.float32)
        logits[:, self.word] = 3.0
        logits[self.eos_at, EOS_ID], logits[self.eos_at, self.word] = 3.0, -3.0
        return tf.broadcast_to(logits, [tf.shape(decoder_input)[0], width, self.vocab])


def test_rescoring_picks_the_teachers_best_length():
    source = tf.constant([[5, 6, 7, 8, 9, EOS_ID]])  # M = 6: lengths 3 .. 9
    rescored = nat_translate(_FakeNAT(), source, 10, halfwidth=3, rescorer=FakeAT())
    assert int(rescored["lengths"][0, 0]) == 4
    np.testing.assert_array_equal(rescored["ids"].numpy()[0, 0, :5], [10, 10, 10, EOS_ID, PAD_ID])
    # Scored by the NAT alone, the forced EOS costs least in the longest candidate.
    alone = nat_translate(_FakeNAT(), source, 10, halfwidth=3)
    assert int(alone["lengths"][0, 0]) == 9
    single = nat_translate(_FakeNAT(), source, 10)
    assert int(single["lengths"][0, 0]) == 6  # N = M + C
    # By total log-probability every token costs, so the shortest candidate wins; the score
    # returned is the total either way.
    total = nat_translate(_FakeNAT(), source, 10, halfwidth=3, selection="total")
    assert int(total["lengths"][0, 0]) == 3
    logp = np.log(np.exp(3.0) / (np.exp(3.0) + np.exp(-2.0) + 18 * np.exp(-3.0)))
    eos = np.log(np.exp(-2.0) / (np.exp(3.0) + np.exp(-2.0) + 18 * np.exp(-3.0)))
    np.testing.assert_allclose(total["scores"].numpy()[0, 0], 2 * logp + eos, rtol=1e-5)
    np.testing.assert_allclose(alone["scores"].numpy()[0, 0], 8 * logp + eos, rtol=1e-5)


def test_collapse_repeats_by_hand():
    ids = tf.constant([[10, 10, 11, 11, 11, 12, EOS_ID, PAD_ID],
                       [5, EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
                       [7, 8, 7, 7, EOS_ID, PAD_ID, PAD_ID, PAD_ID]])
    logp = tf.reshape(-tf.range(1.0, 25.0), [3, 8]) * tf.cast(ids != PAD_ID, tf.float32)
    got_ids, got_logp, got_columns, lengths = collapse_repeats(ids, logp, ids + 100)
    np.testing.assert_array_equal(got_ids.numpy(), [[10, 11, 12, EOS_ID, 0, 0, 0, 0],
                                                    [5, EOS_ID, 0, 0, 0, 0, 0, 0],
                                                    [7, 8, 7, EOS_ID, 0, 0, 0, 0]])
    np.testing.assert_array_equal(lengths.numpy(), [4, 2, 4])
    # Each run keeps its first token's log-probability and column.
    np.testing.assert_array_equal(got_logp.numpy()[:, :4], [[-1, -3, -6, -7], [-9, -10, 0, 0],
                                                            [-17, -18, -19, -21]])
    np.testing.assert_array_equal(got_columns.numpy()[0], [110, 111, 112, EOS_ID + 100, 0, 0, 0, 0])


def test_collapsed_candidates_are_scored_as_output():
    """The fake NAT fills every length with token 10: collapsed, each candidate is [10, EOS];
    the rescorer (EOS best at position 1) then scores that, by hand."""
    source = tf.constant([[5, 6, 7, 8, 9, EOS_ID]])
    got = nat_translate(_FakeNAT(), source, 10, halfwidth=3, rescorer=FakeAT(eos_at=1),
                        collapse=True, n_best=7)
    assert got["lengths"].numpy().tolist() == [[2] * 7]
    np.testing.assert_array_equal(got["ids"].numpy()[0, :, :3], [[10, EOS_ID, PAD_ID]] * 7)
    word = np.log(np.exp(3.0) / (np.exp(3.0) + 19 * np.exp(-3.0)))
    np.testing.assert_allclose(got["scores"].numpy()[0], [2 * word] * 7, rtol=1e-5)


def test_nat_translate_with_collapse_equals_collapsing_then_rescoring():
    """On a random tiny NART (its fills repeat tokens): the collapsed decoding keeps, of the
    uncollapsed candidates each collapsed here in numpy and rescored alone, the best per
    token."""
    config = ModelConfig.from_shape("tiny", architecture="nart", vocab_size=20, dropout=0.0,
                                    length_offset=0.6, max_length=12)
    model = build_model(config)
    teacher = build_model(ModelConfig.from_shape("tiny", vocab_size=20, dropout=0.0))
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID, PAD_ID, PAD_ID]])
    plain = nat_translate(model, source, 12, halfwidth=2, n_best=5)
    got = nat_translate(model, source, 12, halfwidth=2, rescorer=teacher, collapse=True)
    changed = 0
    for b in range(2):
        best = None
        for ids in plain["ids"].numpy()[b]:
            real = [t for t in ids if t != PAD_ID]
            kept = [t for i, t in enumerate(real) if i == 0 or t != real[i - 1]]
            changed += len(kept) < len(real)
            score = float(teacher_scores(teacher, source[b:b + 1], tf.constant([kept]))[0])
            if best is None or score / len(kept) > best[0] / len(best[1]):
                best = (score, kept)
        n = len(best[1])
        assert int(got["lengths"][b, 0]) == n
        np.testing.assert_array_equal(got["ids"].numpy()[b, 0, :n], best[1])
        assert not got["ids"].numpy()[b, 0, n:].any()
        np.testing.assert_allclose(got["scores"].numpy()[b, 0], best[0], rtol=1e-4)
    assert changed  # the case the option exists for occurred


def test_n_best_lists_every_length_candidate_by_its_rule():
    """n_best = 2B+1: every candidate once, ranked by the rule's score computed here by hand
    (the NAT's own total log-probability: each token logp, the forced EOS eos), the first the
    one n_best = 1 keeps."""
    source = tf.constant([[5, 6, 7, 8, 9, EOS_ID], [5, 6, 7, EOS_ID, PAD_ID, PAD_ID]])
    logp = np.log(np.exp(3.0) / (np.exp(3.0) + np.exp(-2.0) + 18 * np.exp(-3.0)))
    eos = np.log(np.exp(-2.0) / (np.exp(3.0) + np.exp(-2.0) + 18 * np.exp(-3.0)))
    for rule in ("normalized", "total"):
        listed = nat_translate(_FakeNAT(), source, 10, halfwidth=3, selection=rule, n_best=7)
        best = nat_translate(_FakeNAT(), source, 10, halfwidth=3, selection=rule)
        for row, center in enumerate((6, 4)):
            lengths = list(range(max(center - 3, 2), max(center - 3, 2) + 7))
            totals = {n: (n - 1) * logp + eos for n in lengths}
            rank = {"total": lambda n: totals[n], "normalized": lambda n: totals[n] / n}[rule]
            assert listed["lengths"].numpy()[row].tolist() == sorted(lengths, key=rank,
                                                                     reverse=True)
            np.testing.assert_allclose(listed["scores"].numpy()[row],
                                       [totals[n] for n in listed["lengths"].numpy()[row]],
                                       rtol=1e-5)
            np.testing.assert_array_equal(listed["ids"].numpy()[row, :1], best["ids"].numpy()[row])
    with pytest.raises(ValueError, match="n_best must be 1 to the 3 candidates"):
        nat_translate(_FakeNAT(), source, 10, halfwidth=1, n_best=4)


def test_nart_pads_to_its_longest_candidate_only():
    config = ModelConfig.from_shape("tiny", architecture="nart", vocab_size=20, dropout=0.0,
                                    length_offset=1.4)
    model = build_model(config)
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID, PAD_ID, PAD_ID]])
    bounded = nat_translate(model, source, 16, halfwidth=2)
    # Width 5 + round(1.4) + 2 = 8 instead of 16, and the same translations.
    assert bounded["ids"].shape[-1] == 8
    model.length_bound = lambda width, halfwidth: None
    full = nat_translate(model, source, 16, halfwidth=2)
    assert full["ids"].shape[-1] == 16
    np.testing.assert_array_equal(bounded["ids"].numpy(), full["ids"].numpy()[..., :8])
    assert not full["ids"].numpy()[..., 8:].any()
    np.testing.assert_allclose(bounded["scores"].numpy(), full["scores"].numpy(), rtol=1e-5)


@pytest.mark.parametrize("collapse", [False, True])
def test_nat_translate_is_the_same_under_xla(collapse):
    config = ModelConfig.from_shape("tiny", architecture="nart", vocab_size=20, dropout=0.0,
                                    length_offset=0.6)
    model = build_model(config)
    teacher = build_model(ModelConfig.from_shape("tiny", vocab_size=20, dropout=0.0))
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID, PAD_ID, PAD_ID]])

    def run(s):
        return nat_translate(model, s, 12, halfwidth=2, rescorer=teacher, collapse=collapse)

    plain, xla = tf.function(run)(source), tf.function(run, jit_compile=True)(source)
    np.testing.assert_array_equal(plain["ids"].numpy(), xla["ids"].numpy())
    np.testing.assert_allclose(plain["scores"].numpy(), xla["scores"].numpy(), rtol=1e-4)


def numpy_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_best_tokens_equal_log_softmax_then_argmax():
    from tfnmt.decoding.common import best_tokens, fixed_length_allowed

    rng = np.random.default_rng(4)
    logits = rng.normal(scale=4.0, size=(3, 5, 11)).astype(np.float32)
    lengths = np.array([5, 2, 3], np.int32)
    allowed = fixed_length_allowed(tf.constant(lengths), 5, tf.range(11)).numpy()
    ids, logp = best_tokens(tf.constant(logits), allowed)
    log_probs = np.where(allowed, numpy_log_softmax(logits.astype(np.float64)), -np.inf)
    np.testing.assert_array_equal(ids.numpy(), log_probs.argmax(-1))
    np.testing.assert_allclose(logp.numpy(), log_probs.max(-1), atol=1e-5)
    # EOS exactly at N - 1, never PAD, BOS or EOS elsewhere.
    assert (ids.numpy()[np.arange(3), lengths - 1] == EOS_ID).all()
    for row, n in enumerate(lengths):
        assert not np.isin(ids.numpy()[row, : n - 1], [PAD_ID, 2, EOS_ID]).any()


@pytest.mark.parametrize("architecture", ["nart", "imitate_nat"])
def test_nat_translate_equals_each_candidate_decoded_alone(architecture):
    """The length-parallel batch (encoder output shared, fused arg-max, padded rescoring)
    chooses and scores exactly as decoding and rescoring every candidate on its own."""
    config = ModelConfig.from_shape("tiny", architecture=architecture, vocab_size=20,
                                    dropout=0.0, length_offset=0.6, max_length=12)
    model = build_model(config)
    teacher = build_model(ModelConfig.from_shape("tiny", vocab_size=20, dropout=0.0))
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID, PAD_ID, PAD_ID]])
    got = nat_translate(model, source, 12, halfwidth=2, rescorer=teacher)
    encoded, mask = model.encode(source)
    centers = model.predicted_lengths(source, encoded, mask)
    limit = min(12, model.length_bound(5, 2) or 12)
    for b in range(2):
        best = None
        for n in candidate_lengths(centers[b:b + 1], 2, limit).numpy()[0]:
            logits = model.nat_decode(source[b:b + 1], encoded[b:b + 1], mask[b:b + 1],
                                      tf.constant([n]), n).numpy()[0].astype(np.float64)
            log_probs = numpy_log_softmax(logits)
            log_probs[:, [PAD_ID, 2]] = -np.inf
            log_probs[: n - 1, EOS_ID] = -np.inf
            ids = list(log_probs[: n - 1].argmax(-1)) + [EOS_ID]
            at = numpy_log_softmax(teacher.decode(
                tf.constant([[2] + ids[:-1]]), *teacher.encode(source[b:b + 1]))
                .numpy()[0].astype(np.float64))
            score = sum(at[t, token] for t, token in enumerate(ids))
            if best is None or score / n > best[0] / best[1]:
                best = (score, n, ids)
        score, n, ids = best
        assert int(got["lengths"][b, 0]) == n
        np.testing.assert_array_equal(got["ids"].numpy()[b, 0, :n], ids)
        assert not got["ids"].numpy()[b, 0, n:].any()
        np.testing.assert_allclose(got["scores"].numpy()[b, 0], score, rtol=1e-4)


def test_int8_nat_and_rescorer_read_their_tables_in_int8():
    """At int8 the NAT pass and the AT rescoring project through the int8 table
    (pass_constants), as the autoregressive loops do: nat_translate equals the same steps with
    decoding_constants given by hand, and not the float32 table's result."""
    from tfnmt.data.sequences import shift_right
    from tfnmt.runs import at_precision

    config = ModelConfig.from_shape("tiny", architecture="nart", vocab_size=20, dropout=0.0,
                                    length_offset=0.6, max_length=12)
    model = at_precision(build_model(config), "int8")
    teacher = at_precision(build_model(ModelConfig.from_shape("tiny", vocab_size=20,
                                                              dropout=0.0)), "int8")
    assert model.pass_constants()["output_kernel"].dtype == tf.int8
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID, PAD_ID, PAD_ID]])
    got = nat_translate(model, source, 12, halfwidth=1, rescorer=teacher)
    width = min(12, model.length_bound(5, 1))
    encoded, mask = model.encode(source)
    lengths = tf.reshape(candidate_lengths(model.predicted_lengths(source, encoded, mask), 1,
                                           width), [-1])

    def translate(table):
        constants = model.decoding_constants() if table == "int8" else None
        logits = model.nat_decode(tf.repeat(source, 3, axis=0), encoded, mask, lengths, width,
                                  constants=constants)
        ids, _, _ = argmax_fill(logits, lengths)
        at = teacher.decode(shift_right(ids), *teacher.encode(source),
                            constants=teacher.decoding_constants() if table == "int8" else None)
        at = numpy_log_softmax(at.numpy().astype(np.float64))
        chosen = np.take_along_axis(at, ids.numpy()[..., None], -1)[..., 0]
        return ids.numpy(), np.where(ids.numpy() != PAD_ID, chosen, 0.0).sum(1)

    ids, scores = translate("int8")
    best = (scores / lengths.numpy()).reshape(2, 3).argmax(1) + [0, 3]
    np.testing.assert_array_equal(got["ids"].numpy()[:, 0], ids[best])
    np.testing.assert_allclose(got["scores"].numpy()[:, 0], scores[best], rtol=1e-4)
    float_scores = translate("float32")[1]
    assert np.abs(float_scores[best] - scores[best]).max() > 1e-3
