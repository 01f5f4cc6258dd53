"""Non-autoregressive Transformer (hint-based NART paper, Sec. 2; Gu et al. 2017), and the
pieces every NAT model shares: copying source representations into decoder inputs, decoding
several target lengths in one batch, and rescoring the candidates with an AT model.

The decoder sees no causal mask; its input for target position t is the source embedding at
position round(t M / N) (uniform copy); each layer adds positional attention.
"""

import keras_hub
import tensorflow as tf

from tfnmt.data.sequences import lengths_of
from tfnmt.layers.nat_decoder import nat_self_mask, NATDecoderLayer
from tfnmt.models.transformer import Transformer


def uniform_copy_indices(source_lengths, target_lengths, width):
    """[B, width] source positions: target position t < N copies round(t M / N) (Gu et al.
    2017; SPEC.md; halves round up), at most M - 1; positions t >= N get 0 (padding)."""
    t = tf.cast(tf.range(width), tf.float32)[None]
    m = tf.cast(source_lengths, tf.float32)[:, None]
    n = tf.cast(target_lengths, tf.float32)[:, None]
    index = tf.cast(tf.floor(t * m / tf.maximum(n, 1.0) + 0.5), tf.int32)
    index = tf.minimum(index, tf.cast(m, tf.int32) - 1)
    return tf.where(t < n, tf.maximum(index, 0), 0)


class NART(Transformer):
    """Encoder as the Transformer's; decoder layers are NATDecoderLayers. Training: call() on
    {"source", "target"} returns logits for every target position (no shift)."""

    decoder_layer_class = NATDecoderLayer

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.position_encoding = keras_hub.layers.SinePositionEncoding(name="nat_positions")

    def decoder_inputs(self, source, encoded, source_mask, target_lengths, width,
                       training=False):
        """Uniform copy of the source token embeddings (+ target position encodings)."""
        del encoded
        index = uniform_copy_indices(lengths_of(source), target_lengths, width)
        return self.source_embedder(tf.gather(source, index, batch_dims=1), training=training)

    def nat_decode(self, source, encoded, source_mask, target_lengths, width, training=False,
                   return_internals=False, constants=None):
        """One parallel pass for targets of `target_lengths` [R] padded to `width` -> logits
        [R, width, V] (and {"hidden", "attention"} per layer as Transformer.decode). `source`
        [R, S] has a row per target; `encoded` and `source_mask` may have one per sentence
        instead (R = c * B, a sentence's c targets consecutive)."""
        x = self.decoder_inputs(source, encoded, source_mask, target_lengths, width, training)
        target_mask = tf.range(width)[None] < target_lengths[:, None]
        self_mask = nat_self_mask(target_mask, self.config.nat.attend_self)
        positions = self.position_encoding(x)
        memory_mask = source_mask[:, None, :]
        internals = {"hidden": [], "attention": [], "policy": []}
        for i, layer in enumerate(self.decoder_layers):
            x, policy = self.layer_input(i, x)
            x, probs = self.run_layer(layer, x, positions, layer.project_memory(encoded),
                                      memory_mask, self_mask, training)
            internals["hidden"].append(x)
            internals["attention"].append(probs)
            internals["policy"].append(policy)
        logits = self.logits(x, constants)  # constants: a shortlist's output columns
        return (logits, internals) if return_internals else logits

    def run_layer(self, layer, x, positions, memory_kv, memory_mask, self_mask, training):
        return layer(x, positions, memory_kv, memory_mask, self_mask, training=training)

    def predicted_lengths(self, source, encoded, source_mask):
        """[B] N = M + C: the source length plus the training data's mean difference."""
        del encoded, source_mask
        return lengths_of(source) + int(round(self.config.nat.length_offset))

    def length_bound(self, source_width, halfwidth):
        """The longest candidate a source batch `source_width` tokens wide can get, M + C + B
        with M <= width: NAT decoding pads to this instead of the decode limit (the output
        projection over the padding is most of a NAT pass on CPU)."""
        return source_width + max(int(round(self.config.nat.length_offset)), 0) + halfwidth

    def call(self, inputs, training=False, return_internals=False):
        source, target = inputs["source"], inputs["target"]
        encoded, source_mask = self.encode(source, training=training)
        return self.nat_decode(source, encoded, source_mask, lengths_of(target),
                               tf.shape(target)[1], training, return_internals)
