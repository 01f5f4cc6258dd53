import numpy as np
import pytest
import tensorflow as tf

from tfnmt.layers.gru_decoder import GRUDecoder


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def make(attention, rng):
    decoder = GRUDecoder(hidden_size=12, output_size=6, attention=attention, attention_units=10,
                         d_model=8, num_heads=2, dropout=0.0)
    decoder.build((None, None, 6), (None, None, 8))
    memory = rng.normal(size=(2, 5, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    embeddings = rng.normal(size=(2, 4, 6)).astype(np.float32)
    return decoder, memory, mask, embeddings


@pytest.mark.parametrize("attention", ["additive", "dot", "multihead"])
def test_step_by_step_equals_teacher_forced_pass(attention):
    rng = np.random.default_rng(0)
    decoder, memory, mask, embeddings = make(attention, rng)
    h0, state = decoder.initial_state(tf.constant(memory), tf.constant(mask))
    parallel = decoder(tf.constant(embeddings), h0, state).numpy()
    h, steps = h0, []
    for t in range(4):
        out, h = decoder.step(tf.constant(embeddings[:, t]), h, state)
        steps.append(out.numpy())
    np.testing.assert_allclose(np.stack(steps, 1), parallel, atol=1e-5)


def numpy_context(attention, decoder, query, memory, mask):
    if attention == "additive":
        keys = memory @ decoder.attention.keys.kernel.numpy()
        scores = (np.tanh(query[:, None, :] + keys) @ decoder.attention.v.kernel.numpy())[..., 0]
    elif attention == "dot":
        scores = np.einsum("bu,bsu->bs", query, memory @ decoder.attention.keys.kernel.numpy())
    else:
        mha = decoder.attention.attention
        kv = memory @ mha.kv.kernel.numpy() + mha.kv.bias.numpy()
        k, v = kv[..., :8], kv[..., 8:]
        out = np.zeros((2, 8))
        for b in range(2):
            for head in range(2):
                sl = slice(4 * head, 4 * head + 4)
                s = k[b, :, sl] @ query[b, sl] / 2.0
                s = np.where(mask[b], s, -np.inf)
                p = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                out[b, sl] = p @ v[b, :, sl]
        return out @ mha.out.kernel.numpy() + mha.out.bias.numpy()
    scores = np.where(mask, scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bs,bsd->bd", p, memory)


@pytest.mark.parametrize("attention", ["additive", "dot", "multihead"])
def test_one_step_matches_numpy_and_ignores_padding(attention):
    rng = np.random.default_rng(1)
    decoder, memory, mask, embeddings = make(attention, rng)
    h0, state = decoder.initial_state(tf.constant(memory), tf.constant(mask))
    out, h1 = decoder.step(tf.constant(embeddings[:, 0]), h0, state)

    m = mask[..., None].astype(np.float32)
    h_prev = np.tanh((memory * m).sum(1) / m.sum(1) @ decoder.initial.kernel.numpy()
                     + decoder.initial.bias.numpy())
    np.testing.assert_allclose(h0.numpy(), h_prev, atol=1e-5)
    hq = h_prev @ decoder.recurrent.kernel.numpy() + decoder.recurrent.bias.numpy()
    u, query = hq[:, :36], hq[:, 36:]
    context = numpy_context(attention, decoder, query, memory, mask)
    x = (embeddings[:, 0] @ decoder.input_embedding.kernel.numpy()
         + decoder.input_embedding.bias.numpy() + context @ decoder.input_context.kernel.numpy())
    z = sigmoid(x[:, :12] + u[:, :12])
    r = sigmoid(x[:, 12:24] + u[:, 12:24])
    n = np.tanh(x[:, 24:] + r * u[:, 24:])
    h = (1 - z) * n + z * h_prev
    np.testing.assert_allclose(h1.numpy(), h, atol=1e-5)
    expected = np.tanh(np.concatenate([h, context, embeddings[:, 0]], -1)
                       @ decoder.readout.kernel.numpy() + decoder.readout.bias.numpy())
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
    # Padding: changing memory rows behind the mask changes nothing for sentence 2.
    memory2 = memory.copy()
    memory2[1, 3:] = rng.normal(size=(2, 8))
    h0b, state_b = decoder.initial_state(tf.constant(memory2), tf.constant(mask))
    out_b, _ = decoder.step(tf.constant(embeddings[:, 0]), h0b, state_b)
    np.testing.assert_allclose(out_b.numpy()[1], out.numpy()[1], atol=1e-6)


@pytest.mark.parametrize("attention", ["additive", "dot", "multihead"])
def test_grouped_hypotheses_share_a_memory_row(attention):
    """Beam search keeps the memory once per sentence: K queries a row equal K copies."""
    rng = np.random.default_rng(3)
    decoder, memory, mask, _ = make(attention, rng)
    _, state = decoder.initial_state(tf.constant(memory), tf.constant(mask))
    query = tf.constant(rng.normal(size=(3 * memory.shape[0], decoder.attention.query_dim)),
                        tf.float32)
    tiled = {name: tf.repeat(t, 3, axis=0) for name, t in state.items()}
    grouped, grouped_probs = decoder.attention_step(query, state)
    each, each_probs = decoder.attention_step(query, tiled)
    np.testing.assert_allclose(grouped.numpy(), each.numpy(), atol=1e-5)
    np.testing.assert_allclose(grouped_probs.numpy(), each_probs.numpy(), atol=1e-6)
