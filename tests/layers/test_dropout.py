import keras
import numpy as np
import tensorflow as tf

from tfnmt.layers import dropout
from tfnmt.layers.transformer_encoder import TransformerEncoder


def numpy_keep_mask(shape, rate, seed):
    """tfnmt.layers.dropout.keep_mask written out in numpy's uint32 arithmetic."""
    def mix(h):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x85EBCA6B)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0xC2B2AE35)
        return h ^ (h >> np.uint32(16))
    s = np.asarray(seed, np.int32).view(np.uint32)
    h = mix(mix(np.arange(np.prod(shape), dtype=np.uint32) ^ s[0]) + s[1])
    return (h >= np.uint32(int(rate * 2**32))).reshape(shape)


def test_keep_mask_matches_numpy_eagerly_and_under_xla():
    seed = tf.constant([-5, 2**31 - 1], tf.int32)  # negative and largest seeds, as bits
    expected = numpy_keep_mask((3, 7, 11), 0.3, seed.numpy())
    eager = dropout.keep_mask(tf.constant([3, 7, 11]), 0.3, seed)
    xla = tf.function(lambda s: dropout.keep_mask(tf.constant([3, 7, 11]), 0.3, s),
                      jit_compile=True)(seed)
    np.testing.assert_array_equal(eager.numpy(), expected)
    np.testing.assert_array_equal(xla.numpy(), expected)
    assert 0 < expected.sum() < expected.size


def test_keep_rate_and_independence():
    """1 - rate of a million elements kept (to 7 standard deviations); neighbours and the next
    draw's mask uncorrelated (agreement p^2 + (1-p)^2, to 7 standard deviations)."""
    n, p = 1_000_000, 0.8
    a = dropout.keep_mask(tf.constant([n]), 1 - p, tf.constant([3, 10])).numpy()
    b = dropout.keep_mask(tf.constant([n]), 1 - p, tf.constant([3, 11])).numpy()
    c = dropout.keep_mask(tf.constant([n]), 1 - p, tf.constant([4, 10])).numpy()
    agree = p * p + (1 - p) ** 2
    tolerance = 7 * np.sqrt(agree * (1 - agree) / n)
    assert abs(a.mean() - p) < 7 * np.sqrt(p * (1 - p) / n)
    for other in (b, c, a[1:], a[256:]):
        assert abs(np.mean(a[:len(other)] == other) - agree) < tolerance


def test_keras_dropout_layers_use_the_hash_mask_and_scale():
    layer = keras.layers.Dropout(0.25, seed=9)
    x = tf.random.stateless_uniform([4, 6, 8], [1, 2], 1.0, 2.0)
    seed = layer.seed_generator.state.numpy()
    y = layer(x, training=True).numpy()
    mask = numpy_keep_mask((4, 6, 8), 0.25, seed)
    np.testing.assert_array_equal(y != 0, mask)
    np.testing.assert_allclose(y[mask], x.numpy()[mask] / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(layer(x, training=False), x)


def test_encoder_attention_dropout_is_its_own_rate():
    """The encoder's attention probabilities take attention_dropout, not the residual dropout
    (keras-hub's layer has one rate for both)."""
    x = tf.random.stateless_normal([2, 5, 8], [3, 4])
    padding = tf.ones([2, 5], bool)
    for attention_dropout, same in ((0.0, True), (0.5, False)):
        encoder = TransformerEncoder(1, 8, 2, 16, dropout=0.5,
                                     attention_dropout=attention_dropout)
        encoder(x, padding)
        attention = encoder.layers_[0]._self_attention_layer
        trained = attention(x, x, training=True)
        assert np.allclose(trained, attention(x, x, training=False)) == same
