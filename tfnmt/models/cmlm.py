"""CMLM with mask-predict decoding (Ghazvininejad et al. 2019), the baseline of the HRT paper:
the Transformer decoder without the causal mask plus a target-length classifier on the
encoder output."""

import keras
import tensorflow as tf

from tfnmt.models.transformer import Transformer


class LengthClassifier:
    """Mixin: a target-length classifier (lengths 0 .. max_length) on the mean of the real
    encoder states, as in Mask-Predict; CMLM and the imitate-NAT learner use it."""

    def add_length_classifier(self, config):
        self.length_predictor = keras.layers.Dense(config.max_length + 1, name="length")

    def build_layers(self):
        super().build_layers()
        self.length_predictor.build((None, self.config.d_model))

    def length_logits(self, encoded, source_mask):
        weights = tf.cast(source_mask, encoded.dtype)[:, :, None]
        mean = tf.reduce_sum(encoded * weights, 1) / tf.maximum(tf.reduce_sum(weights, 1), 1.0)
        return self.length_predictor(mean)

    def length_bound(self, source_width, halfwidth):
        """No bound below the decode limit: the classifier may choose any length."""
        del source_width, halfwidth
        return None


class CMLM(LengthClassifier, Transformer):
    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.add_length_classifier(config)
