"""Attention for a recurrent decoder's single query per step (Hybrid paper, Sec. 2.1).

Every variant takes an already projected query (the decoder fuses that projection with its GRU
recurrent matmul) and memory pre-computed once per sentence (Devlin 2017's pre-computed keys).
"""

import keras
import tensorflow as tf

from tfnmt.layers.attention import NEG_INF, MultiHeadAttention, split_heads


class AdditiveAttention(keras.layers.Layer):
    """Bahdanau et al. (2015): score(q, k_s) = v^T tanh(q + W_k h_s); values are h_s."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.query_dim = units
        self.keys = keras.layers.Dense(units, use_bias=False, name="keys")
        self.v = keras.layers.Dense(1, use_bias=False, name="v")
        self.v.keep_float32 = True  # its kernel is read directly (attend): int8 leaves it be

    def build(self, memory_shape):
        self.keys.build(memory_shape)
        self.v.build(memory_shape[:-1] + (self.query_dim,))

    def get_config(self):
        return {**super().get_config(), "units": self.query_dim}

    def project_memory(self, memory, mask):
        return {"keys": self.keys(memory), "values": memory, "mask": mask}

    def attend(self, query, state):
        """query [G*B, T, units] -> (context [G*B, T, D], probs [G*B, T, S]); G hypotheses a
        sentence share its memory row (beam search)."""
        grouped = _group(query, state)
        hidden = tf.tanh(grouped[:, :, None, :] + state["keys"][:, None, :, :])
        # einsum, not Dense: Dense's tensordot has a dynamic-shape gradient XLA rejects in scan.
        scores = tf.einsum("btsu,u->bts", hidden, self.v.kernel[:, 0])
        return _weighted(scores, state, query)


class DotAttention(keras.layers.Layer):
    """Luong et al. (2015) 'general': score(q, h_s) = q . (W_k h_s); values are h_s."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.query_dim = units
        self.keys = keras.layers.Dense(units, use_bias=False, name="keys")

    def build(self, memory_shape):
        self.keys.build(memory_shape)

    def get_config(self):
        return {**super().get_config(), "units": self.query_dim}

    def project_memory(self, memory, mask):
        return {"keys": self.keys(memory), "values": memory, "mask": mask}

    def attend(self, query, state):
        scores = tf.einsum("btu,bsu->bts", _group(query, state), state["keys"])
        return _weighted(scores, state, query)


class MultiHeadRNNAttention(keras.layers.Layer):
    """The encoder's multi-head attention without FFN (Hybrid paper), queries supplied."""

    def __init__(self, d_model, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.query_dim = d_model
        self.attention = MultiHeadAttention(d_model, num_heads, self_attention=False,
                                            project_queries=False, name="attention")

    def build(self, memory_shape):
        self.attention.build(memory_shape)

    def get_config(self):
        return {**super().get_config(), "d_model": self.query_dim,
                "num_heads": self.attention.num_heads}

    def project_memory(self, memory, mask):
        k, v = self.attention.project_memory(memory)
        return {"k": k, "v": v, "mask": mask}

    def attend(self, query, state):
        q = split_heads(query, self.attention.num_heads)
        out, probs = self.attention.attend(q, state["k"], state["v"], state["mask"][:, None, :])
        return out, tf.reduce_mean(probs, axis=1)


def _group(query, state):
    """query [G*B, T, u] -> [B, G*T, u] for memory of batch B."""
    return tf.reshape(query, [tf.shape(state["values"])[0], -1, query.shape[-1]])


def _weighted(scores, state, query):
    """Grouped scores [B, G*T, S] -> (context, probs) with the query's rows [G*B, T, ...]."""
    scores += tf.cast(tf.logical_not(state["mask"][:, None, :]), scores.dtype) * NEG_INF
    probs = tf.nn.softmax(scores, axis=-1)
    context = tf.einsum("bts,bsd->btd", probs, state["values"])
    rows, steps = tf.shape(query)[0], tf.shape(query)[1]
    return (tf.reshape(context, [rows, steps, context.shape[-1]]),
            tf.reshape(probs, [rows, steps, tf.shape(probs)[2]]))


ATTENTIONS = ("additive", "dot", "multihead")


def make_attention(kind, units, d_model, num_heads):
    if kind == "additive":
        return AdditiveAttention(units, name="attention")
    if kind == "dot":
        return DotAttention(units, name="attention")
    if kind == "multihead":
        return MultiHeadRNNAttention(d_model, num_heads, name="attention")
    raise ValueError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTIONS)}")
