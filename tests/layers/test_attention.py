import numpy as np
import tensorflow as tf

import pytest

from tfnmt.layers.attention import dot_product_attention, MultiHeadAttention, update_cache


def numpy_attention(q, k, v, mask, heads):
    """Direct computation of multi-head scaled dot-product attention (no projections)."""
    b, t, d = q.shape
    dh = d // heads
    out = np.zeros((b, t, d))
    for i in range(b):
        for h in range(heads):
            sl = slice(h * dh, (h + 1) * dh)
            scores = q[i, :, sl] @ k[i, :, sl].T / np.sqrt(dh)
            scores = np.where(mask[i], scores, -np.inf)
            p = np.exp(scores - scores.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            out[i, :, sl] = p @ v[i, :, sl]
    return out


def test_self_attention_matches_numpy_and_ignores_padding():
    rng = np.random.default_rng(0)
    layer = MultiHeadAttention(8, 2, self_attention=True)
    x = rng.normal(size=(2, 5, 8)).astype(np.float32)
    mask = np.ones((2, 5, 5), bool)
    mask[1, :, 3:] = False  # the second sentence has 2 padding positions
    out = layer(tf.constant(x), attention_mask=tf.constant(mask)).numpy()
    w_qkv, b_qkv = [w.numpy() for w in layer.qkv.weights]
    w_o, b_o = [w.numpy() for w in layer.out.weights]
    q, k, v = np.split(x @ w_qkv + b_qkv, 3, axis=-1)
    expected = numpy_attention(q, k, v, mask, 2) @ w_o + b_o
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # Changing padded positions does not change the outputs at real positions.
    x2 = x.copy()
    x2[1, 3:] = rng.normal(size=(2, 8))
    out2 = layer(tf.constant(x2), attention_mask=tf.constant(mask)).numpy()
    np.testing.assert_allclose(out2[1, :3], out[1, :3], atol=1e-6)


def test_cross_attention_uses_memory_projection():
    rng = np.random.default_rng(1)
    layer = MultiHeadAttention(8, 4, self_attention=False)
    x = rng.normal(size=(1, 3, 8)).astype(np.float32)
    memory = rng.normal(size=(1, 6, 8)).astype(np.float32)
    mask = np.ones((1, 3, 6), bool)
    out = layer(tf.constant(x), memory=tf.constant(memory), attention_mask=tf.constant(mask)).numpy()
    w_q, b_q = [w.numpy() for w in layer.q.weights]
    w_kv, b_kv = [w.numpy() for w in layer.kv.weights]
    w_o, b_o = [w.numpy() for w in layer.out.weights]
    k, v = np.split(memory @ w_kv + b_kv, 2, axis=-1)
    expected = numpy_attention(x @ w_q + b_q, k, v, mask, 4) @ w_o + b_o
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("group", [1, 3])
def test_update_cache_writes_each_hypothesis_into_its_slot_at_one_time(group):
    rng = np.random.default_rng(5)
    batch, heads, length, depth = 2, 2, 4, 5
    cache = rng.normal(size=(batch, heads, length * group, depth)).astype(np.float32)
    new = rng.normal(size=(group * batch, heads, 1, depth)).astype(np.float32)
    out = update_cache(tf.constant(cache), tf.constant(new), tf.constant(2), group).numpy()
    expected = cache.copy()
    for row in range(group * batch):  # row = sentence * group + hypothesis
        expected[row // group, :, 2 * group + row % group] = new[row, :, 0]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("steps", [1, 3])
def test_grouped_queries_equal_queries_on_repeated_memory(steps):
    """K hypotheses of a sentence querying its one memory row = each querying its own copy."""
    rng = np.random.default_rng(2)
    group, batch, heads, depth, length = 3, 2, 2, 4, 5
    q = tf.constant(rng.normal(size=(group * batch, steps, heads, depth)), tf.float32)
    k, v = (tf.constant(rng.normal(size=(batch, heads, length, depth)), tf.float32)
            for _ in range(2))
    mask = np.ones((batch, 1, length), bool)
    mask[1, :, 3:] = False
    no_dropout = tf.keras.layers.Dropout(0.0)
    context, probs = dot_product_attention(q, k, v, tf.constant(mask), no_dropout)
    repeat = lambda t: tf.repeat(t, group, axis=0)  # noqa: E731
    context_1, probs_1 = dot_product_attention(q, repeat(k), repeat(v), repeat(tf.constant(mask)),
                                               no_dropout)
    assert context.shape == (group * batch, steps, heads * depth)
    np.testing.assert_allclose(context.numpy(), context_1.numpy(), atol=1e-6)
    np.testing.assert_allclose(probs.numpy(), probs_1.numpy(), atol=1e-6)
    # A [B, T, S] mask applies to every hypothesis of its sentence.
    causal = np.tril(np.ones((steps, length), bool))[None].repeat(batch, 0)
    context, _ = dot_product_attention(q, k, v, tf.constant(causal), no_dropout)
    context_1, _ = dot_product_attention(q, repeat(k), repeat(v), repeat(tf.constant(causal)),
                                         no_dropout)
    np.testing.assert_allclose(context.numpy(), context_1.numpy(), atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_causal_mask_shared_by_the_batch_in_a_graph(dtype):
    """A [1, T, T] causal mask for a batch of 3, in a plain graph (where TensorFlow fuses the
    scores' scale and mask into oneDNN's matmul), equals numpy with the mask repeated."""
    rng = np.random.default_rng(3)
    batch, heads, steps, depth = 3, 2, 6, 4
    q = rng.normal(size=(batch, steps, heads, depth)).astype(np.float32)
    k, v = (rng.normal(size=(batch, heads, steps, depth)).astype(np.float32) for _ in range(2))
    causal = np.tril(np.ones((steps, steps), bool))[None]
    attend = tf.function(lambda q, k, v: dot_product_attention(
        q, k, v, tf.constant(causal), lambda x, training: x)[0], jit_compile=False)
    context = attend(*(tf.cast(t, dtype) for t in (q, k, v)))
    flat = lambda t: np.transpose(t, (0, 2, 1, 3)).reshape(batch, steps, heads * depth)  # noqa
    expected = numpy_attention(q.reshape(batch, steps, -1), flat(k), flat(v),
                               causal.repeat(batch, 0), heads)
    np.testing.assert_allclose(tf.cast(context, tf.float32).numpy(), expected,
                               atol=1e-5 if dtype == "float32" else 5e-2)
