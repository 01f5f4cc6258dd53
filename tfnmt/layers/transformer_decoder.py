"""Transformer decoder layer with a parallel pass and an incremental, cached step.

The self-attention mask is an argument, so the same weights serve causal (AT, Skip-AT) and
bidirectional (NAT, Skip-CMLM) decoding.
"""

import keras
import tensorflow as tf

from tfnmt.layers.attention import MultiHeadAttention, update_cache
from tfnmt.layers.feed_forward import FeedForward


def residual(x, sublayer, norm, dropout, pre_norm, training=False):
    """x + dropout(sublayer(norm(x))) when pre_norm, else norm(x + dropout(sublayer(x)))."""
    if pre_norm:
        return x + dropout(sublayer(norm(x)), training=training)
    return norm(x + dropout(sublayer(x), training=training))


class TransformerDecoderLayer(keras.layers.Layer):
    def __init__(self, d_model, num_heads, ffn_dim, dropout=0.1, attention_dropout=0.0,
                 pre_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.ffn_dim = d_model, num_heads, ffn_dim
        self.dropout_rate, self.attention_dropout = dropout, attention_dropout
        self.self_attention = MultiHeadAttention(d_model, num_heads, True, attention_dropout,
                                                 name="self_attention")
        self.cross_attention = MultiHeadAttention(d_model, num_heads, False, attention_dropout,
                                                  name="cross_attention")
        self.ffn = FeedForward(d_model, ffn_dim, dropout, name="ffn")
        self.pre_norm = pre_norm
        self.norms = [keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm_{i}")
                      for i in range(3)]
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        for layer in [self.self_attention, self.cross_attention, self.ffn] + self.norms:
            layer.build(input_shape)

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "ffn_dim": self.ffn_dim, "dropout": self.dropout_rate,
                "attention_dropout": self.attention_dropout, "pre_norm": self.pre_norm}

    def _block(self, i, x, sublayer, training=False):
        return residual(x, sublayer, self.norms[i], self.dropout, self.pre_norm, training)

    def call(self, x, memory_kv, memory_mask, self_mask, training=False, return_attention=False,
             position_encoding=None):
        """Parallel pass. x [B, T, d]; memory_kv from project_memory; masks bool, True = attend.

        memory_mask broadcasts to [B, T, S], self_mask to [B, T, T]. With return_attention, also
        returns the cross-attention probabilities [B, H, T, S]. position_encoding is for the NAT
        layer's positional-attention block, which sits between self- and cross-attention.
        """
        def self_attend(h):
            return self.self_attention.attend(*self.self_attention.project_self(h), self_mask,
                                              training=training)[0]

        probs = []

        def cross_attend(h):
            out, p = self.cross_attention.attend(self.cross_attention.project_query(h),
                                                 *memory_kv, memory_mask, training=training)
            probs.append(p)
            return out

        x = self._block(0, x, self_attend, training)
        if position_encoding is not None:
            x = self.positional_block(x, position_encoding, self_mask, training)
        x = self._block(1, x, cross_attend, training)
        x = self._block(2, x, lambda h: self.ffn(h, training=training), training)
        return (x, probs[0]) if return_attention else x

    def project_memory(self, memory):
        return self.cross_attention.project_memory(memory)

    def step(self, x, position, cache, memory_kv, memory_mask, visible):
        """One decoding step. x [G*B, 1, d] at time `position` (G hypotheses a sentence,
        consecutive rows); cache {"k", "v"}: [B, H, L*G, D] (see update_cache); visible
        [B, G, L*G] bool: the cache slots each hypothesis attends to; memory_kv [B, H, S, D]
        (the G hypotheses of a sentence share it, see dot_product_attention).

        Returns (y [G*B, 1, d], updated cache).
        """
        x, cache = self.self_attention_step(x, position, cache, visible)
        x = self.cross_attention_step(x, memory_kv, memory_mask)
        return self.ffn_step(x), cache

    # The three sub-layers of a step, separately callable (the time breakdown times each).
    def self_attention_step(self, x, position, cache, visible):
        new_cache = {}

        def self_attend(h):
            q, k, v = self.self_attention.project_self(h)
            group = visible.shape[1]
            new_cache["k"] = update_cache(cache["k"], k, position, group)
            new_cache["v"] = update_cache(cache["v"], v, position, group)
            return self.self_attention.attend(q, new_cache["k"], new_cache["v"], visible)[0]

        return self._block(0, x, self_attend), new_cache

    def cross_attention_step(self, x, memory_kv, memory_mask):
        def cross_attend(h):
            return self.cross_attention.attend(self.cross_attention.project_query(h),
                                               *memory_kv, memory_mask)[0]

        return self._block(1, x, cross_attend)

    def ffn_step(self, x):
        return self._block(2, x, self.ffn)
