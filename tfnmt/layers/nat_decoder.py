"""Non-autoregressive decoder layer (Gu et al. 2017; hint-based NART, Sec. 2): the Transformer
decoder layer without the causal mask, plus a positional-attention sub-layer between
self-attention and encoder-decoder attention."""

import keras
import tensorflow as tf

from tfnmt.layers.attention import PositionalAttention
from tfnmt.layers.transformer_decoder import residual, TransformerDecoderLayer


def nat_self_mask(target_mask, attend_self=True):
    """[B, T, T] bool: every position attends to every real target position; with
    attend_self=False not to itself (the public hint-NART code's choice)."""
    mask = target_mask[:, None, :]
    if not attend_self:
        length = tf.shape(target_mask)[1]
        mask &= ~tf.eye(length, dtype=tf.bool)[None]
    return mask


class NATDecoderLayer(TransformerDecoderLayer):
    """Sub-layers in order: self-attention (mask given), positional attention, cross-attention,
    FFN; each a residual block. call() returns the output and the cross-attention probabilities
    [B, H, T, S] (the alignment hint reads them)."""

    def __init__(self, d_model, num_heads, ffn_dim, dropout=0.1, attention_dropout=0.0,
                 pre_norm=True, **kwargs):
        super().__init__(d_model, num_heads, ffn_dim, dropout, attention_dropout, pre_norm,
                         **kwargs)
        self.positional_attention = PositionalAttention(d_model, num_heads, attention_dropout,
                                                        name="positional_attention")
        self.positional_norm = keras.layers.LayerNormalization(epsilon=1e-5,
                                                               name="positional_norm")

    def build(self, input_shape):
        super().build(input_shape)
        self.positional_attention.build(input_shape)
        self.positional_norm.build(input_shape)

    def positional_block(self, x, position_encoding, self_mask, training=False):
        def positional_attend(h):
            return self.positional_attention(h, position_encoding, self_mask,
                                             training=training)[0]

        return residual(x, positional_attend, self.positional_norm, self.dropout, self.pre_norm,
                        training)

    def call(self, x, position_encoding, memory_kv, memory_mask, self_mask, training=False):
        return super().call(x, memory_kv, memory_mask, self_mask, training=training,
                            return_attention=True, position_encoding=position_encoding)
