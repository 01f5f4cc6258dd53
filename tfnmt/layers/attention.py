"""Multi-head attention with fused projections and a fixed-size, in-place decoding cache.

Written here rather than taken from keras-hub because keras-hub's CachedMultiHeadAttention keeps
separate Q/K/V matmuls and its decoder returns no attention weights, which the hint-based NART
(alignment hint) and the speed tricks of the papers ("weight combination") both need.
"""

import math

import keras
import tensorflow as tf

NEG_INF = -1e9


def split_heads(x, num_heads):
    """[B, T, H*D] -> [B, T, H, D]."""
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([shape[:2], [num_heads, x.shape[-1] // num_heads]], 0))


def heads_first(x, num_heads):
    """[B, T, H*D] -> [B, H, T, D]: the layout attention reads keys and values in (caches and
    cross-attention memory are stored this way, so a decoding step transposes neither)."""
    return tf.transpose(split_heads(x, num_heads), [0, 2, 1, 3])


def dot_product_attention(q, k, v, mask, dropout, training=False):
    """Scaled dot-product attention per head: q [G*B, T, H, D], k/v [B, H, S, D], mask bool
    broadcastable to [B, T, S] or [B, G*T, S] (a row per query: beam search's self-attention)
    -> (context [G*B, T, H*D], probabilities [G*B, H, T, S]).

    G > 1 groups G consecutive query rows on one memory row: beam search keeps the encoder
    memory once per sentence, and its K hypotheses query it together (K*T queries a head).
    """
    query_batch, steps, heads, depth = tf.unstack(tf.shape(q))
    memory_batch, memory_length = tf.shape(k)[0], tf.shape(k)[2]
    group = query_batch // memory_batch
    grouped = tf.transpose(tf.reshape(q, [memory_batch, -1, heads, depth]), [0, 2, 1, 3])
    scores = tf.matmul(grouped, k, transpose_b=True) * (1.0 / math.sqrt(q.shape[-1]))
    if mask.shape[1] != 1:  # [B, T, S]: one pattern for every group; [B, G*T, S]: a row each
        mask = tf.tile(mask, [1, group * steps // tf.shape(mask)[1], 1])
    if mask.shape[0] == 1:  # the causal [1, T, T]: oneDNN's fused matmul + add has only a
        # reference kernel for an addend broadcast over batch and heads (~100x slower)
        mask = tf.broadcast_to(mask, tf.concat([[memory_batch], tf.shape(mask)[1:]], 0))
    scores += tf.cast(tf.logical_not(mask[:, None]), scores.dtype) * NEG_INF
    probs = tf.nn.softmax(scores, axis=-1)                              # [B, H, G*T, S]
    context = tf.matmul(dropout(probs, training=training), v)           # [B, H, G*T, D]
    context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]),
                         [query_batch, steps, heads * q.shape[-1]])
    probs = tf.reshape(probs, [memory_batch, heads, group, steps, memory_length])
    probs = tf.reshape(tf.transpose(probs, [0, 2, 1, 3, 4]),
                       [query_batch, heads, steps, memory_length])
    return context, probs


class MultiHeadAttention(keras.layers.Layer):
    """Scaled dot-product attention over H heads (Vaswani et al. 2017, Sec. 3.2).

    With `self_attention=True`, queries, keys and values come from one fused [d, 3d] projection;
    otherwise queries use a [d, d] projection and keys/values one fused [d, 2d] projection of the
    memory, computed once per sentence by `project_memory`.
    """

    def __init__(self, d_model, num_heads, self_attention, dropout=0.0, project_queries=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads = d_model, num_heads
        self.self_attention, self.dropout = self_attention, dropout
        # False: the caller supplies projected queries (a GRU decoder fuses that projection
        # with its recurrent one).
        self.project_queries = project_queries
        self.head_dim = d_model // num_heads
        init = keras.initializers.GlorotUniform()
        if self_attention:
            self.qkv = keras.layers.Dense(3 * d_model, kernel_initializer=init, name="qkv")
        else:
            if project_queries:
                self.q = keras.layers.Dense(d_model, kernel_initializer=init, name="q")
            self.kv = keras.layers.Dense(2 * d_model, kernel_initializer=init, name="kv")
        self.out = keras.layers.Dense(d_model, kernel_initializer=init, name="out")
        self.attention_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        if self.self_attention:
            self.qkv.build(input_shape)
        else:
            if self.project_queries:
                self.q.build(input_shape)
            self.kv.build(input_shape)
        self.out.build(input_shape[:-1] + (self.d_model,))

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "self_attention": self.self_attention, "dropout": self.dropout,
                "project_queries": self.project_queries}

    def project_self(self, x):
        """x [B, T, d] -> q [B, T, H, D], k and v [B, H, T, D] (one matmul)."""
        q, k, v = tf.split(self.qkv(x), 3, axis=-1)
        return (split_heads(q, self.num_heads), heads_first(k, self.num_heads),
                heads_first(v, self.num_heads))

    def project_memory(self, memory):
        """memory [B, S, d] -> k, v each [B, H, S, D] (one matmul, once per sentence)."""
        k, v = tf.split(self.kv(memory), 2, axis=-1)
        return heads_first(k, self.num_heads), heads_first(v, self.num_heads)

    def project_query(self, x):
        return split_heads(self.q(x), self.num_heads)

    def attend(self, q, k, v, mask, training=False):
        """q [G*B, T, H, D], k/v [B, H, S, D], mask bool broadcastable to [B, T, S] (True =
        attend; see dot_product_attention for G). Returns the output [G*B, T, d] and the
        attention probabilities [G*B, H, T, S].
        """
        context, probs = dot_product_attention(q, k, v, mask, self.attention_dropout, training)
        return self.out(context), probs

    def call(self, x, memory=None, attention_mask=None, training=False):
        """Full (parallel) attention; `memory` is ignored for self-attention."""
        if self.self_attention:
            q, k, v = self.project_self(x)
        else:
            q = self.project_query(x)
            k, v = self.project_memory(memory)
        return self.attend(q, k, v, attention_mask, training=training)[0]


def update_cache(cache, new, position, group=1):
    """Writes new [G*B, H, 1, D] (G = `group` hypotheses a sentence, consecutive rows) at time
    `position` of a fixed-size cache [B, H, L*G, D]: slot t*G + g holds what row g of a
    sentence computed at time t. Beam search never moves a slot; each hypothesis attends to its
    ancestors' slots (models.transformer.visible_slots), so the cache is not gathered after
    every step.

    A scatter of the G slots (TensorScatterUpdate, which stock TF Serving has; the XLA-only
    DynamicUpdateSlice would not run in a non-compiled SavedModel): XLA updates the loop's
    buffer in place. A select over all slots, as before, cost a copy of the cache a step once
    the slots of a time were G (tests/perf/decode_loop_ab.py: 1.16x instead of 1.43x).
    """
    heads, depth = cache.shape[1], cache.shape[3]
    new = tf.transpose(tf.reshape(new, [-1, group, heads, depth]), [0, 2, 1, 3])  # [B, H, G, D]
    grid = tf.meshgrid(tf.range(tf.shape(new)[0]), tf.range(heads),
                       position * group + tf.range(group), indexing="ij")
    return tf.tensor_scatter_nd_update(cache, tf.stack(grid, axis=-1), tf.cast(new, cache.dtype))


class PositionalAttention(keras.layers.Layer):
    """Positional attention (Gu et al. 2017, Sec. 3.1): queries and keys are projections of the
    position encodings alone, values of the hidden states; H heads, as MultiHeadAttention."""

    def __init__(self, d_model, num_heads, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.dropout = d_model, num_heads, dropout
        init = keras.initializers.GlorotUniform()
        self.qk = keras.layers.Dense(2 * d_model, kernel_initializer=init, name="qk")
        self.v = keras.layers.Dense(d_model, kernel_initializer=init, name="v")
        self.out = keras.layers.Dense(d_model, kernel_initializer=init, name="out")
        self.attention_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        for layer in (self.qk, self.v, self.out):
            layer.build(input_shape)

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "dropout": self.dropout}

    def call(self, x, position_encoding, mask, training=False):
        """x [B, T, d]; position_encoding [B or 1, T, d]; mask broadcastable to [B, T, T].
        Returns (output [B, T, d], probabilities [B, H, T, T])."""
        q, k = tf.split(self.qk(position_encoding), 2, axis=-1)
        q = split_heads(tf.broadcast_to(q, tf.shape(x)), self.num_heads)
        k = heads_first(tf.broadcast_to(k, tf.shape(x)), self.num_heads)
        context, probs = dot_product_attention(q, k, heads_first(self.v(x), self.num_heads), mask,
                                               self.attention_dropout, training)
        return self.out(context), probs
