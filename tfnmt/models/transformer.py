"""Transformer encoder-decoder (Vaswani et al. 2017): the AT teacher and baseline.

Decoding interface shared by every incremental model (see tfnmt/decoding.py):
  state = model.initial_state(source_ids, max_length)   # {"cache": ..., "memory": ...}
  logits, cache = model.step(ids [B], position, state["cache"], state["memory"])
"cache" is reordered by beam search; "memory" (encoder keys/values, source mask) is per sentence.
"""

import keras
import tensorflow as tf

from tfnmt.data.tokenizer import BOS_ID, PAD_ID
from tfnmt.layers.embedding import Embedder, token_embedding
from tfnmt.layers.transformer_decoder import TransformerDecoderLayer
from tfnmt.layers.transformer_encoder import TransformerEncoder


def causal_mask(length):
    """[1, T, T] bool, True where query t may attend to key s (s <= t)."""
    idx = tf.range(length)
    return (idx[None, :] <= idx[:, None])[None]


def shift_right(target, bos_id=BOS_ID):
    """Decoder inputs for teacher forcing: [BOS, y_1 .. y_{N-1}]; PAD where the target is PAD."""
    shifted = tf.concat([tf.fill([tf.shape(target)[0], 1], bos_id), target[:, :-1]], axis=1)
    return tf.where(target != PAD_ID, shifted, PAD_ID)


class Transformer(keras.Model):
    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        d = config.d_model
        self.source_table = token_embedding(config.vocab_size, d, "source_embedding")
        self.target_table = (self.source_table if config.share_embeddings else
                             token_embedding(config.output_vocab_size, d, "target_embedding"))
        self.source_embedder = Embedder(self.source_table, d, config.dropout, name="source_embed")
        self.target_embedder = Embedder(self.target_table, d, config.dropout, name="target_embed")
        self.encoder = TransformerEncoder(config.encoder_layers, d, config.num_heads,
                                          config.ffn_dim, config.dropout, config.pre_norm,
                                          name="encoder")
        self.decoder_layers = [
            TransformerDecoderLayer(d, config.num_heads, config.ffn_dim, config.dropout,
                                    config.attention_dropout, config.pre_norm, name=f"decoder_{i}")
            for i in range(config.decoder_layers)]
        self.decoder_norm = (keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")
                             if config.pre_norm else None)
        if not config.tie_output:
            self.output_projection = keras.layers.Dense(config.output_vocab_size, name="output")

    def build(self, input_shape=None):
        """Creates every variable up front (decoding calls sub-layer methods, not __call__)."""
        hidden = (None, None, self.config.d_model)
        self.source_table.build((None, None))
        self.target_table.build((None, None))
        self.encoder.build(hidden)
        for layer in self.decoder_layers:
            layer.build(hidden)
        if self.decoder_norm is not None:
            self.decoder_norm.build(hidden)
        if not self.config.tie_output:
            self.output_projection.build(hidden)
        self.built = True

    # -- shared pieces --------------------------------------------------------------------------
    def encode(self, source, training=False):
        """source [B, S] ids -> (encoder output [B, S, d], source mask [B, S] bool)."""
        mask = tf.not_equal(source, PAD_ID)
        x = self.source_embedder(source, training=training)
        return self.encoder(x, padding_mask=mask, training=training), mask

    def logits(self, hidden):
        if self.decoder_norm is not None:
            hidden = self.decoder_norm(hidden)
        if self.config.tie_output:
            return self.target_table(hidden, reverse=True)
        return self.output_projection(hidden)

    # -- teacher-forced parallel pass -----------------------------------------------------------
    def decode(self, decoder_input, encoded, source_mask, self_mask=None, training=False,
               return_hidden=False):
        """Parallel pass over decoder_input [B, T]; causal unless self_mask is given."""
        if self_mask is None:
            self_mask = causal_mask(tf.shape(decoder_input)[1])
        memory_mask = source_mask[:, None, :]
        x = self.target_embedder(decoder_input, training=training)
        hidden = []
        for layer in self.decoder_layers:
            x = layer(x, layer.project_memory(encoded), memory_mask, self_mask, training=training)
            hidden.append(x)
        logits = self.logits(x)
        return (logits, hidden) if return_hidden else logits

    def call(self, inputs, training=False):
        """inputs {"source": [B, S], "target": [B, T]} -> logits [B, T, V] (teacher forcing)."""
        encoded, source_mask = self.encode(inputs["source"], training=training)
        return self.decode(shift_right(inputs["target"]), encoded, source_mask, training=training)

    # -- incremental decoding -------------------------------------------------------------------
    def initial_state(self, source, max_length):
        """Encodes once; pre-computes cross-attention K/V; allocates [B, max_length] caches."""
        encoded, source_mask = self.encode(source)
        batch = tf.shape(source)[0]
        heads = self.config.num_heads
        shape = [batch, max_length, heads, self.config.d_model // heads]
        cache = [{"k": tf.zeros(shape, encoded.dtype), "v": tf.zeros(shape, encoded.dtype)}
                 for _ in self.decoder_layers]
        memory = {"kv": [layer.project_memory(encoded) for layer in self.decoder_layers],
                  "mask": source_mask[:, None, :]}
        return {"cache": cache, "memory": memory}

    def step(self, ids, position, cache, memory):
        """ids [B] at time `position` -> (logits [B, V], updated cache)."""
        x = self.target_embedder(ids[:, None], start_index=position)
        new_cache = []
        for layer, layer_cache, kv in zip(self.decoder_layers, cache, memory["kv"]):
            x, layer_cache = layer.step(x, position, layer_cache, kv, memory["mask"])
            new_cache.append(layer_cache)
        return self.logits(x)[:, 0], new_cache
