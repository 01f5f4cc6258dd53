"""Attention for a recurrent decoder's single query per step (Hybrid paper, Sec. 2.1).

Every variant takes an already projected query (the decoder fuses that projection with its GRU
recurrent matmul) and memory pre-computed once per sentence (Devlin 2017's pre-computed keys).
"""

import keras
import tensorflow as tf

from tfnmt.layers.attention import NEG_INF, MultiHeadAttention


class AdditiveAttention(keras.layers.Layer):
    """Bahdanau et al. (2015): score(q, k_s) = v^T tanh(q + W_k h_s); values are h_s."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.query_dim = units
        self.keys = keras.layers.Dense(units, use_bias=False, name="keys")
        self.v = keras.layers.Dense(1, use_bias=False, name="v")

    def build(self, memory_shape):
        self.keys.build(memory_shape)
        self.v.build(memory_shape[:-1] + (self.query_dim,))

    def project_memory(self, memory, mask):
        return {"keys": self.keys(memory), "values": memory, "mask": mask}

    def attend(self, query, state):
        """query [B, T, units] -> (context [B, T, D], probs [B, T, S])."""
        hidden = tf.tanh(query[:, :, None, :] + state["keys"][:, None, :, :])
        # einsum, not Dense: Dense's tensordot has a dynamic-shape gradient XLA rejects in scan.
        scores = tf.einsum("btsu,u->bts", hidden, self.v.kernel[:, 0])
        return _weighted(scores, state)


class DotAttention(keras.layers.Layer):
    """Luong et al. (2015) 'general': score(q, h_s) = q . (W_k h_s); values are h_s."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.query_dim = units
        self.keys = keras.layers.Dense(units, use_bias=False, name="keys")

    def build(self, memory_shape):
        self.keys.build(memory_shape)

    def project_memory(self, memory, mask):
        return {"keys": self.keys(memory), "values": memory, "mask": mask}

    def attend(self, query, state):
        return _weighted(tf.einsum("btu,bsu->bts", query, state["keys"]), state)


class MultiHeadRNNAttention(keras.layers.Layer):
    """The encoder's multi-head attention without FFN (Hybrid paper), queries supplied."""

    def __init__(self, d_model, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.query_dim = d_model
        self.attention = MultiHeadAttention(d_model, num_heads, self_attention=False,
                                            project_queries=False, name="attention")

    def build(self, memory_shape):
        self.attention.build(memory_shape)

    def project_memory(self, memory, mask):
        k, v = self.attention.project_memory(memory)
        return {"k": k, "v": v, "mask": mask}

    def attend(self, query, state):
        from tfnmt.layers.attention import split_heads

        q = split_heads(query, self.attention.num_heads)
        out, probs = self.attention.attend(q, state["k"], state["v"], state["mask"][:, None, :])
        return out, tf.reduce_mean(probs, axis=1)


def _weighted(scores, state):
    scores += tf.cast(tf.logical_not(state["mask"][:, None, :]), scores.dtype) * NEG_INF
    probs = tf.nn.softmax(scores, axis=-1)
    return tf.einsum("bts,bsd->btd", probs, state["values"]), probs


ATTENTIONS = ("additive", "dot", "multihead")


def make_attention(kind, units, d_model, num_heads):
    if kind == "additive":
        return AdditiveAttention(units, name="attention")
    if kind == "dot":
        return DotAttention(units, name="attention")
    if kind == "multihead":
        return MultiHeadRNNAttention(d_model, num_heads, name="attention")
    raise ValueError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTIONS)}")
