"""Dropout masks from a counter hash, for every Keras Dropout layer in the process.

Keras draws its masks with TensorFlow's default random generator: a Philox kernel that
--xla_elementwise's clusters cannot fuse (~7 ms a million elements, forward and backward) and
that XLA alone compiles slowly on CPU. The mask here is a hash of (seed, element index):
element-wise integer ops that XLA fuses with the ops around it (~1-3 ms a million).
tests/perf/dropout.py measures both; docs/decisions.md has what a training step gains.
"""

import tensorflow as tf
from keras.src.backend.tensorflow import random as keras_tf_random  # Keras's only hook

_keras_dropout = keras_tf_random.dropout


def _mix(h):
    """murmur3's 32-bit finaliser: every input bit flips each output bit with probability ~1/2."""
    for shift, multiplier in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(shift, tf.uint32)))
        h = h * tf.constant(multiplier, tf.uint32)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(16, tf.uint32)))


def keep_mask(shape, rate, seed):
    """bool mask of `shape`, each element True with probability 1 - rate (to 2^-32), a function
    of seed (int32 [2]) and the element's row-major index only."""
    seed = tf.bitcast(tf.cast(seed, tf.int32), tf.uint32)
    index = tf.bitcast(tf.range(tf.reduce_prod(shape), dtype=tf.int32), tf.uint32)
    h = _mix(_mix(tf.bitwise.bitwise_xor(index, seed[0])) + seed[1])
    return tf.reshape(h >= tf.constant(min(int(rate * 2**32), 2**32 - 1), tf.uint32), shape)


def dropout(inputs, rate, noise_shape=None, seed=None):
    """keras.src.backend.tensorflow.random.dropout with the mask of keep_mask."""
    if noise_shape is not None or rate in (0.0, 1.0):
        return _keras_dropout(inputs, rate, noise_shape, seed)
    seed = keras_tf_random._cast_seed(keras_tf_random.draw_seed(seed))
    inputs = tf.convert_to_tensor(inputs)
    kept = inputs * tf.cast(1.0 / (1.0 - rate), inputs.dtype)
    return tf.where(keep_mask(tf.shape(inputs), rate, seed), kept, tf.zeros_like(inputs))


keras_tf_random.dropout = dropout
