
import numpy as np
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.decoding import common, search
from tfnmt.decoding.iterative import (bidirectional_mask, hybrid_regressive_decode,
                                      skip_cmlm_input, SkipAT)
from tfnmt.methods.hrt import skip_at_sample
from tfnmt.models import build_model
from tfnmt.models.transformer import causal_mask

MASK, B2 = 4, 5
SOURCE = tf.constant([[8, 9, 10, 11, 3, 0], [12, 13, 3, 0, 0, 0]])
TARGET = tf.constant([[11, 12, 13, 14, 15, 3], [16, 17, 18, 19, 3, 0]])


def model():
    return build_model(ModelConfig.from_shape("tiny", vocab_size=30, dropout=0.0))


def test_the_two_masks():
    y = tf.constant([[11, 12, 3, 0]])
    np.testing.assert_array_equal(causal_mask(3).numpy()[0], np.tril(np.ones((3, 3), bool)))
    np.testing.assert_array_equal(bidirectional_mask(y).numpy(), [[[True, True, True, False]]])


def test_skip_at_cached_decoding_equals_its_parallel_pass():
    m = model()
    sample = skip_at_sample(TARGET, 2, B2)
    encoded, source_mask = m.encode(SOURCE)
    parallel = m.decode(sample["input"], encoded, source_mask,
                        positions=sample["positions"]).numpy()
    skip = SkipAT(m, 2, B2)
    state = skip.initial_state(SOURCE, 3)
    cache, steps = state["cache"], []
    memory = search.step_memory(skip, state["memory"])  # as beam search passes it
    previous = tf.fill([2], 2)  # beam search feeds BOS; SkipAT turns it into BOS_2
    for i in range(3):
        logits, cache = skip.step(previous, tf.constant(i), cache, memory)
        steps.append(logits.numpy())
        previous = sample["labels"][:, i]
    np.testing.assert_allclose(np.stack(steps, 1), parallel, atol=1e-5)


def test_skip_cmlm_input_interleaves_masks():
    z = tf.constant([[12, 14, EOS_ID], [12, EOS_ID, PAD_ID]])
    y_nat, positions = skip_cmlm_input(z, 2, MASK)
    assert y_nat.numpy().tolist() == [[MASK, 12, MASK, 14, MASK, EOS_ID],
                                      [MASK, 12, MASK, EOS_ID, PAD_ID, PAD_ID]]
    assert positions.numpy().tolist() == [[1, 2, 3, 4, 5, 6]] * 2


def test_eq3_score_equals_a_direct_computation():
    m = model()
    out = hybrid_regressive_decode(m, SOURCE, 12, 2, MASK, B2, beam_size=3, n_nat=1)
    encoded, source_mask = m.encode(SOURCE)
    for row in range(2):
        z = out["skip_ids"].numpy()[row, 0].tolist()
        # Skip-CMLM term: log-softmax of one bidirectional pass over y_nat, at every [MASK],
        # of the best token that is not PAD, BOS or [MASK].
        y_nat, pos = skip_cmlm_input(tf.constant([z]), 2, MASK)
        logits = m.decode(y_nat, encoded[row:row + 1], source_mask[row:row + 1],
                          self_mask=bidirectional_mask(y_nat), positions=pos).numpy()[0]
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        logp[:, [PAD_ID, 2, MASK]] = -np.inf
        masked = y_nat.numpy()[0] == MASK
        cmlm = logp[masked].max(-1).sum()
        np.testing.assert_allclose(out["skip_cmlm_score"].numpy()[row, 0], cmlm, rtol=1e-5)
        # Skip-AT term: teacher-forced log P(z) when z ended by itself (a forced EOS at the
        # length limit scores 0 instead).
        n = z.index(EOS_ID) + 1
        inputs = tf.constant([[B2] + z[:n - 1]])
        positions = tf.constant([[2 * i for i in range(n)]])
        at_logits = m.decode(inputs, encoded[row:row + 1], source_mask[row:row + 1],
                             positions=positions).numpy()[0]
        at_logp = at_logits - np.log(np.exp(at_logits).sum(-1, keepdims=True))
        skip_at = sum(at_logp[i, t] for i, t in enumerate(z[:n]))
        forced = skip_at - at_logp[n - 1, EOS_ID]
        got = out["skip_at_score"].numpy()[row, 0]
        assert abs(got - skip_at) < 1e-3 or abs(got - forced) < 1e-3
        np.testing.assert_allclose(out["scores"].numpy()[row, 0], got + cmlm, rtol=1e-5)
        # The output is y_nat filled, cut at its first EOS.
        length = out["lengths"].numpy()[row, 0]
        assert out["ids"].numpy()[row, 0, length - 1] == EOS_ID


def test_two_stage_decode_is_the_same_under_xla():
    m = model()

    def run(source):
        return hybrid_regressive_decode(m, source, 12, 2, MASK, B2, beam_size=3, n_nat=2)

    plain = tf.function(run)(SOURCE)
    xla = tf.function(run, jit_compile=True)(SOURCE)
    np.testing.assert_array_equal(xla["ids"].numpy(), plain["ids"].numpy())
    np.testing.assert_allclose(xla["scores"].numpy(), plain["scores"].numpy(), rtol=1e-4)


def test_the_fill_as_wide_as_the_longest_skip_at_output_changes_nothing(trained_run):
    """With the limit a Python int the Skip-CMLM pass covers the longest z's bucket only; with
    it a tensor, the whole limit: the same translations and scores (the trained run's short
    outputs take the narrow branch)."""
    from tfnmt import runs

    model, _ = runs.restore_model(trained_run, "latest")
    _, target = trained_run.tokenizers()
    mask, bos2 = target.piece_id("<mask>"), target.piece_id("<bos_2>")
    source = tf.constant([[5, 6, EOS_ID, PAD_ID], [7, EOS_ID, PAD_ID, PAD_ID]])
    narrow, full = (hybrid_regressive_decode(model, source, limit, 2, mask, bos2, beam_size=3,
                                             n_nat=2)
                    for limit in (16, tf.constant(16)))
    assert common.sequence_lengths(narrow["skip_ids"]).numpy().max() <= 4  # the 8-wide branch
    for key in ("ids", "lengths", "skip_ids"):
        np.testing.assert_array_equal(narrow[key].numpy(), full[key].numpy())
    np.testing.assert_allclose(narrow["scores"].numpy(), full["scores"].numpy(), rtol=1e-5)


def test_narrowest_runs_the_smallest_width_that_holds_the_longest():
    widths = common.bucket_widths(64, 20)
    assert widths == [8, 16, 20]  # the buckets below the limit, then the limit
    for longest, want in ((1, 8), (8, 8), (9, 16), (17, 20), (20, 20)):
        got = common.narrowest(widths, tf.constant(longest), lambda w: tf.constant(w))
        assert int(got) == want, longest
