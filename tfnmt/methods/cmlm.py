"""CMLM (Ghazvininejad et al. 2019): masked-target training; decoded with mask-predict."""

import dataclasses

import tensorflow as tf

from tfnmt.data.sequences import lengths_of, row_ranks
from tfnmt.data.tokenizer import PAD_ID
from tfnmt.decoding.iterative import bidirectional_mask
from tfnmt.methods.base import Method
from tfnmt.methods.losses import label_smoothed_cross_entropy


def cmlm_sample(target, mask_id, rng):
    """TASK-CMLM (Mask-Predict): per row, n ~ U{1..L} of its L tokens (EOS included) masked at
    random; labels are the masked tokens. rng: a tf.random.Generator (checkpointed)."""
    lengths = lengths_of(target)
    shape = tf.shape(target)
    real = target != PAD_ID
    n = tf.cast(tf.floor(rng.uniform([shape[0]]) * tf.cast(lengths, tf.float32)), tf.int32) + 1
    scores = tf.where(real, rng.uniform(shape), 2.0)  # padding ranks last
    rank = row_ranks(scores)
    masked = real & (rank < n[:, None])
    p = tf.range(1, shape[1] + 1)[None, :]
    return {"input": tf.where(masked, mask_id, target), "positions": tf.broadcast_to(p, shape),
            "labels": tf.where(masked, target, PAD_ID), "causal": False}


class ConditionalMaskedLM:
    """Mask-Predict's objective: TASK-CMLM cross-entropy on the masked tokens plus
    length_weight times the cross-entropy of the target-length classifier (EOS counted)."""

    def __init__(self, mask_id, rng, length_weight=0.1, label_smoothing=0.1):
        self.mask_id, self.rng = mask_id, rng
        self.length_weight, self.label_smoothing = length_weight, label_smoothing

    def __call__(self, model, batch, training):

        target = batch["target"]
        encoded, source_mask = model.encode(batch["source"], training=training)
        sample = cmlm_sample(target, self.mask_id, self.rng)
        logits = model.decode(sample["input"], encoded, source_mask,
                              self_mask=bidirectional_mask(sample["input"]), training=training,
                              positions=sample["positions"])
        loss, nll, tokens = label_smoothed_cross_entropy(logits, sample["labels"],
                                                         self.label_smoothing)
        lengths = tf.reduce_sum(tf.cast(target != PAD_ID, tf.int32), axis=1)
        length_nll = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            lengths, tf.cast(model.length_logits(encoded, source_mask), tf.float32)))
        return {"loss": loss + self.length_weight * length_nll, "nll": nll, "tokens": tokens,
                "length_nll": length_nll}


@dataclasses.dataclass
class Settings:
    length_weight: float = 0.1  # weight of the length classifier's cross-entropy


def build_objective(ctx):
    return ConditionalMaskedLM(ctx.target_tokenizer.piece_id("<mask>"), ctx.rng,
                               ctx.settings.length_weight, ctx.train.label_smoothing)


METHOD = Method("cmlm", ("cmlm",), ("cmlm",), build_objective, {None: {"method": "mask_predict"}},
                {None: Settings})
