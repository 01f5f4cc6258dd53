"""imitate-NAT (imitate-NAT paper, Sec. 3): the AT demonstrator (DAT) and the NAT learner.

Both decoders put an imitation module before every decoder layer. The DAT is the Transformer
otherwise, and keeps c, the moving average of its action usage (Eq. 7), as a non-trainable
weight. The learner has the same decoder without the causal mask, decoder inputs by SoftCopy
(or UniformCopy for the ablation) and a target-length classifier on the encoder output.
"""

import keras
import tensorflow as tf

from tfnmt.data.sequences import lengths_of
from tfnmt.layers.imitation import ImitationModule
from tfnmt.layers.transformer_decoder import TransformerDecoderLayer
from tfnmt.models.cmlm import LengthClassifier
from tfnmt.models.nat import NART, uniform_copy_indices
from tfnmt.models.transformer import Transformer


class Imitating:
    """Mixin for a Transformer-family model: an imitation module before every decoder layer
    (none with num_actions 0: the learner without imitation module of the paper's ablation)."""

    def add_imitation(self, config):
        self.imitation = [ImitationModule(config.d_model, config.imitation.num_actions,
                                          name=f"imitation_{i}")
                          for i in range(config.decoder_layers if config.imitation.num_actions
                                         else 0)]

    def build_layers(self):
        super().build_layers()
        for module in self.imitation:
            module.build((None, None, self.config.d_model))

    def layer_input(self, index, x):
        return self.imitation[index](x) if self.imitation else super().layer_input(index, x)


class Demonstrator(Imitating, Transformer):
    """DAT: the Transformer with imitation modules; c [layers, n] starts uniform."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.add_imitation(config)

    def build_layers(self):
        super().build_layers()
        # One agreed value on every replica: the trainer assigns the all-reduced update.
        self.action_average = self.add_weight(
            name="action_average",
            shape=(self.config.decoder_layers, self.config.imitation.num_actions),
            initializer=keras.initializers.Constant(1.0 / self.config.imitation.num_actions),
            trainable=False, aggregation="only_first_replica")


def soft_copy_weights(source_mask, width, log_tau):
    """w [B, T, S] = softmax over real source positions i of -|j - i| / tau (Eq. 10)."""
    j = tf.cast(tf.range(width), tf.float32)[None, :, None]
    i = tf.cast(tf.range(tf.shape(source_mask)[1]), tf.float32)[None, None, :]
    scores = -tf.abs(j - i) / tf.exp(log_tau)
    scores = tf.where(source_mask[:, None, :], scores, -1e9)
    return tf.nn.softmax(scores, axis=-1)


class ImitateNAT(Imitating, LengthClassifier, NART):
    """The NAT learner: SoftCopy of the encoder's top-layer outputs (Eq. 11; tau = exp of a
    trainable scalar, 1 at the start) plus target position encodings, or UniformCopy of
    the source embeddings, the DAT's decoder structure without the causal mask, a length
    classifier over 0 .. max_length on the mean-pooled encoder output."""

    decoder_layer_class = TransformerDecoderLayer

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.add_imitation(config)
        self.add_length_classifier(config)

    def build_layers(self):
        super().build_layers()
        # UniformCopy has no tau (it would get no gradient).
        if self.config.imitation.copy == "soft":
            self.log_tau = self.add_weight(name="copy_log_tau", shape=(),
                                           initializer=keras.initializers.Constant(0.0))

    def predicted_lengths(self, source, encoded, source_mask):
        """[B] the classifier's most likely length, at least 2 (one token and EOS)."""
        del source
        logits = self.length_logits(encoded, source_mask)
        return tf.maximum(tf.argmax(logits, -1, output_type=tf.int32), 2)

    def decoder_inputs(self, source, encoded, source_mask, target_lengths, width,
                       training=False):
        if self.config.imitation.copy == "uniform":
            index = uniform_copy_indices(lengths_of(source), target_lengths, width)
            return self.source_embedder(tf.gather(source, index, batch_dims=1),
                                        training=training)
        weights = soft_copy_weights(source_mask, width, self.log_tau)
        copied = tf.einsum("bts,bsd->btd", tf.cast(weights, encoded.dtype), encoded)
        # The same for every target of a sentence: one row per target from here on.
        copied = tf.repeat(copied, tf.shape(source)[0] // tf.shape(encoded)[0], axis=0)
        # Target position encodings added, as to every Transformer decoder input (the paper
        # is silent; without them a large tau would leave positions indistinguishable).
        return copied + tf.cast(self.position_encoding(copied), copied.dtype)

    def run_layer(self, layer, x, positions, memory_kv, memory_mask, self_mask, training):
        del positions  # no positional attention in this decoder
        return layer(x, memory_kv, memory_mask, self_mask, training=training,
                     return_attention=True)
