import numpy as np
import pytest
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from tfnmt.decoding.iterative import mask_predict
from tfnmt.methods.cmlm import ConditionalMaskedLM
from tfnmt.models import build_model

MASK = 4
SOURCE = tf.constant([[8, 9, 10, 3], [11, 3, 0, 0]])


def model():
    return build_model(ModelConfig.from_shape("tiny", architecture="cmlm", vocab_size=30,
                                              dropout=0.0, max_length=12))


def test_one_iteration_is_one_parallel_argmax_pass_with_eos_exactly_last():
    m = model()
    out = mask_predict(m, SOURCE, MASK, iterations=1, length_beam=1)
    encoded, mask = m.encode(SOURCE)
    for row in range(2):
        length = int(out["lengths"].numpy()[row, 0])
        # L counts EOS: the most likely length of at least 2.
        expected_length = int(np.argmax(m.length_logits(encoded, mask).numpy()[row, 2:13])) + 2
        assert length == expected_length
        tokens = tf.constant([[MASK] * length])
        logits = m.decode(tokens, encoded[row:row + 1], mask[row:row + 1],
                          self_mask=tf.ones([1, 1, length], tf.bool),
                          positions=tf.constant([list(range(1, length + 1))])).numpy()[0]
        logits[:, [PAD_ID, BOS_ID, MASK, EOS_ID]] = -np.inf
        expected = logits.argmax(-1)
        expected[-1] = EOS_ID  # EOS at position L, nowhere else
        ids = out["ids"].numpy()[row, 0]
        assert ids[:length].tolist() == expected.tolist()
        assert not ids[length:].any()


def test_candidates_end_with_eos_and_are_ranked_over_their_own_length():
    m = model()
    out = mask_predict(m, SOURCE, MASK, iterations=3, length_beam=4, max_length=12)
    ids, lengths = out["ids"].numpy()[:, 0], out["lengths"].numpy()[:, 0]
    for row in range(2):
        n = lengths[row]
        assert n >= 2 and ids[row, n - 1] == EOS_ID and EOS_ID not in ids[row, :n - 1]
        assert not ids[row, n:].any()
        total, mean = out["scores"].numpy()[row, 0], out["selection"].numpy()[row, 0]
        assert total <= 0 and abs(total - mean * n) < 1e-4  # ranked by the mean


def test_more_iterations_and_length_beam_keep_shapes_and_run_under_xla():
    m = model()
    run = tf.function(lambda s: mask_predict(m, s, MASK, iterations=4, length_beam=3),
                      jit_compile=True)
    out = run(SOURCE)
    plain = mask_predict(m, SOURCE, MASK, iterations=4, length_beam=3)
    np.testing.assert_array_equal(out["ids"].numpy(), plain["ids"].numpy())
    ids, lengths = out["ids"].numpy()[:, 0], out["lengths"].numpy()[:, 0]
    for row in range(2):
        assert MASK not in ids[row] and (ids[row, :lengths[row]] != PAD_ID).all()


def test_cmlm_objective_trains_length_and_tokens():
    m = model()
    batch = {"source": SOURCE, "target": tf.constant([[12, 13, 14, 3], [15, 3, 0, 0]])}
    objective = ConditionalMaskedLM(MASK, tf.random.Generator.from_seed(0), length_weight=0.5)
    terms = objective(m, batch, training=False)
    encoded, mask = m.encode(SOURCE)
    logits = m.length_logits(encoded, mask).numpy()
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(float(terms["length_nll"]), -(logp[0, 4] + logp[1, 2]), rtol=1e-5)
    assert float(terms["tokens"]) >= 2  # at least one masked token per row


def test_mask_predict_runs_on_a_model_computing_in_bfloat16():
    """Validation decodes the model being trained, which computes in bfloat16 under
    --mixed_precision=mixed_bfloat16: the same lengths and tokens as float32 on these weights."""
    from tfnmt.runs import at_precision

    m = model()
    low = at_precision(m, "mixed_bfloat16")
    full, half = (mask_predict(x, SOURCE, MASK, iterations=2, length_beam=2) for x in (m, low))
    assert half["scores"].dtype == tf.float32
    np.testing.assert_array_equal(half["lengths"].numpy(), full["lengths"].numpy())
    agree = (half["ids"].numpy() == full["ids"].numpy()).mean()
    assert agree >= 0.8, agree


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def direct_mask_predict(m, source, iterations, length_beam, width):
    """The rule written out: every candidate at its own length, every position projected in
    every pass -> per sentence (mean, length, tokens, total) of the best candidate."""
    encoded, mask = m.encode(source)
    length_logp = log_softmax(m.length_logits(encoded, mask).numpy()[:, : width + 1])
    length_logp[:, :2] = -np.inf
    best = []
    for b in range(source.shape[0]):
        chosen = None
        for n in np.argsort(-length_logp[b], kind="stable")[:length_beam]:
            tokens, probs = np.full(n, MASK), np.zeros(n)
            for t in range(iterations):
                masked = tokens == MASK
                logits = m.decode(tf.constant([tokens]), encoded[b:b + 1], mask[b:b + 1],
                                  self_mask=tf.ones([1, 1, n], tf.bool),
                                  positions=tf.constant([list(range(1, n + 1))])).numpy()[0]
                logp = log_softmax(logits.astype(np.float64))
                logp[:, [PAD_ID, BOS_ID, MASK]] = -np.inf
                logp[: n - 1, EOS_ID] = -np.inf
                logp[n - 1, np.arange(logp.shape[1]) != EOS_ID] = -np.inf
                tokens = np.where(masked, logp.argmax(-1), tokens)
                probs = np.where(masked, logp.max(-1), probs)
                if t < iterations - 1:
                    tokens[np.argsort(probs, kind="stable")[: n * (iterations - 1 - t) // iterations]] = MASK
            if chosen is None or probs.sum() / n > chosen[0]:
                chosen = (probs.sum() / n, n, tokens, probs.sum())
        best.append(chosen)
    return best


@pytest.mark.parametrize("short", [False, True])
def test_mask_predict_equals_the_rule_written_out(short):
    """The optimised passes (a sentence's candidates packed in one row, as wide as the
    narrowest branch that holds the longest sum of lengths, only the re-predicted positions
    projected after the first pass) choose and score as the rule applied to each candidate
    alone. `short`: lengths pushed below 8, so a narrow branch of the 72-wide packed limit
    (3 candidates of a 24-token limit) runs."""
    m = build_model(ModelConfig.from_shape("tiny", architecture="cmlm", vocab_size=30,
                                           dropout=0.0, max_length=24))
    if short:
        bias = np.full(25, -20.0, np.float32)
        bias[2:8] = np.arange(6, dtype=np.float32)
        m.length_predictor.bias.assign(bias)
    got = mask_predict(m, SOURCE, MASK, iterations=4, length_beam=3, max_length=24)
    assert not short or got["lengths"].numpy().max() < 8
    for b, (mean, n, tokens, total) in enumerate(direct_mask_predict(m, SOURCE, 4, 3, 24)):
        assert int(got["lengths"][b, 0]) == n
        np.testing.assert_array_equal(got["ids"].numpy()[b, 0, :n], tokens)
        assert not got["ids"].numpy()[b, 0, n:].any()
        np.testing.assert_allclose(got["scores"].numpy()[b, 0], total, rtol=1e-4)
