"""Training samples of HRT's four tasks (Figure 3 of the HRT paper), built in-graph from a
padded target batch [B, T] whose rows are y_1 .. y_N, EOS, PAD ...

Convention: the input token at position p is y_p (y_0 is the BOS), as in teacher forcing; a
label at PAD is ignored. The target with its EOS is extended to a multiple of k with EOS copies,
so the last kept token z_m is always EOS (inference truncates at the first EOS anyway).
"""

import tensorflow as tf

from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.models.base import row_ranks, shift_right


def _lengths(target):
    return tf.reduce_sum(tf.cast(target != PAD_ID, tf.int32), axis=1)


def chunked_target(target, k):
    """[B, T] -> [B, k * ceil(T / k)]: each row's EOS repeated up to its next multiple of k."""
    width = -(-tf.shape(target)[1] // k) * k
    padded = tf.pad(target, [[0, 0], [0, width - tf.shape(target)[1]]])
    lengths = _lengths(target)
    chunked_lengths = -(-lengths // k) * k
    p = tf.range(width)[None, :]
    return tf.where((p >= lengths[:, None]) & (p < chunked_lengths[:, None]), EOS_ID, padded)


def at_sample(target):
    """TASK-AT: input [BOS, y_1 .. y_{N}] at positions 0 .. N, labels y_1 .. y_N, EOS."""
    positions = tf.broadcast_to(tf.range(tf.shape(target)[1])[None], tf.shape(target))
    return {"input": shift_right(target), "positions": positions, "labels": target,
            "causal": True}


def skip_at_sample(target, k, bos_k_id):
    """TASK-SKIP-AT: input [BOS_k, z_1 .. z_{m-1}] at positions 0, k, .., (m-1)k, labels
    z_1 .. z_m, where z_i = y_{ik}."""
    chunked = chunked_target(target, k)
    z = chunked[:, k - 1::k]                      # z_i = y_{ik}, i = 1 .. m (PAD beyond)
    inputs = tf.where(z != PAD_ID, tf.concat([tf.fill([tf.shape(z)[0], 1], bos_k_id),
                                              z[:, :-1]], axis=1), PAD_ID)
    positions = tf.broadcast_to(tf.range(tf.shape(z)[1])[None] * k, tf.shape(z))
    return {"input": inputs, "positions": positions, "labels": z, "causal": True}


def skip_cmlm_sample(target, k, mask_id):
    """TASK-SKIP-CMLM: k-1 [MASK]s before every kept z_i (positions 1 .. mk); labels are the
    masked tokens, PAD (ignored) at the kept ones."""
    chunked = chunked_target(target, k)
    p = tf.range(1, tf.shape(chunked)[1] + 1)[None, :]
    kept = tf.equal(p % k, 0)
    real = chunked != PAD_ID
    inputs = tf.where(real & ~kept, mask_id, chunked)
    labels = tf.where(real & ~kept, chunked, PAD_ID)
    return {"input": inputs, "positions": tf.broadcast_to(p, tf.shape(chunked)),
            "labels": labels, "causal": False}


def cmlm_sample(target, mask_id, rng):
    """TASK-CMLM (Mask-Predict): per row, n ~ U{1..L} of its L tokens (EOS included) masked at
    random; labels are the masked tokens. rng: a tf.random.Generator (checkpointed)."""
    lengths = _lengths(target)
    shape = tf.shape(target)
    real = target != PAD_ID
    n = tf.cast(tf.floor(rng.uniform([shape[0]]) * tf.cast(lengths, tf.float32)), tf.int32) + 1
    scores = tf.where(real, rng.uniform(shape), 2.0)  # padding ranks last
    rank = row_ranks(scores)
    masked = real & (rank < n[:, None])
    p = tf.range(1, shape[1] + 1)[None, :]
    return {"input": tf.where(masked, mask_id, target), "positions": tf.broadcast_to(p, shape),
            "labels": tf.where(masked, target, PAD_ID), "causal": False}
