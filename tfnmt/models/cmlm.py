"""CMLM with mask-predict decoding (Ghazvininejad et al. 2019), the baseline of the HRT paper:
the Transformer decoder without the causal mask plus a target-length classifier on the
encoder output."""

import keras
import tensorflow as tf

from tfnmt.data.tokenizer import PAD_ID
from tfnmt.decoding import NEG, best_of_candidates
from tfnmt.models.base import row_ranks
from tfnmt.models.hrt import predict_masks
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


def mask_predict(model, source, mask_id, iterations=10, length_beam=5, max_length=None):
    """Mask-predict: for the length_beam most likely lengths L >= 2 (EOS included), start from
    L [MASK]s, then for t = 1 .. I-1 re-mask the n = L (I - t) / I least confident tokens and
    predict them again; every prediction puts EOS at position L and nowhere else
    (decoding.fixed_length_allowed). The candidate with the best mean log-probability over
    its L positions wins.

    Returns ids [B, 1, W] (W = max_length), lengths [B, 1], scores [B, 1].
    """
    width = model.config.max_length if max_length is None else max_length
    encoded, source_mask = model.encode(source)
    batch = tf.shape(source)[0]
    length_logp = tf.nn.log_softmax(model.length_logits(encoded, source_mask)[:, : width + 1])
    # L counts EOS: at least one token and EOS.
    length_logp = tf.concat([tf.fill([batch, 2], NEG), length_logp[:, 2:]], axis=1)
    _, lengths = tf.math.top_k(length_logp, k=length_beam)               # [B, l]
    lengths = tf.maximum(tf.reshape(lengths, [-1]), 2)                   # [B*l]
    rows = tf.shape(lengths)[0]
    # encoded stays one row per sentence: its length_beam candidates share it, and its keys
    # and values are projected once for every iteration.
    memory_kv = [layer.project_memory(encoded) for layer in model.decoder_layers]
    positions = tf.broadcast_to(tf.range(1, width + 1)[None], [rows, width])
    real = positions <= lengths[:, None]
    tokens = tf.where(real, mask_id, PAD_ID)
    probs = tf.zeros([rows, width])

    for t in range(iterations):
        masked = tokens == mask_id
        predicted, confidence = predict_masks(model, tokens, positions, encoded, source_mask,
                                              mask_id, lengths, memory_kv)
        tokens = tf.where(masked, predicted, tokens)
        probs = tf.where(masked, confidence, probs)
        if t == iterations - 1:
            break
        n = lengths * (iterations - 1 - t) // iterations                # to re-mask
        ranked = tf.where(real, probs, -NEG)                             # padding last
        rank = row_ranks(ranked)
        tokens = tf.where(real & (rank < n[:, None]), mask_id, tokens)

    mean_logp = tf.reduce_sum(tf.where(real, probs, 0.0), 1) / tf.cast(lengths, tf.float32)
    return best_of_candidates(mean_logp, {"ids": tokens, "lengths": lengths,
                                          "scores": mean_logp}, batch, length_beam)
