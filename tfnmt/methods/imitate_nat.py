"""imitate-NAT (Wei et al. 2019): the DAT demonstrator with its imitation module, and the NAT learner that imitates it."""

import dataclasses

import tensorflow as tf

from tfnmt.data.sequences import lengths_of, shift_right
from tfnmt.data.tokenizer import PAD_ID
from tfnmt.core.errors import UserError
from tfnmt.methods.base import Method
from tfnmt.methods.losses import label_smoothed_cross_entropy


def redistributed(pi, c):
    """pi' = (pi^2 / c) renormalised over the action categories (imitate-NAT, Eq. 8)."""
    sharpened = tf.square(pi) / c
    return sharpened / tf.reduce_sum(sharpened, axis=-1, keepdims=True)


def action_regularisation(pi, c, real):
    """L_pi = sum over real positions of KL(pi' || pi) (Eq. 9), pi' a fixed target."""
    target = tf.stop_gradient(redistributed(pi, c))
    kl = tf.reduce_sum(target * (tf.math.log(tf.maximum(target, 1e-12)) -
                                 tf.math.log(tf.maximum(pi, 1e-12))), axis=-1)
    return tf.reduce_sum(tf.where(real, kl, 0.0))


class ActionRegularisedMLE:
    """The DAT's objective L_AT + lambda_1 L_pi (imitate-NAT, Eq. 14). Also returns each layer's
    sentence-summed mean action distribution; after the all-reduce the trainer calls
    update_state once per step, so c <- alpha c + (1 - alpha) mean pi is one agreed value."""

    state_keys = ("action_usage", "sentences")

    def __init__(self, action_lambda=0.001, alpha=0.9, label_smoothing=0.1):
        self.action_lambda, self.alpha = action_lambda, alpha
        self.label_smoothing = label_smoothing

    def __call__(self, model, batch, training):

        target = batch["target"]
        encoded, source_mask = model.encode(batch["source"], training=training)
        logits, internals = model.decode(shift_right(target), encoded, source_mask,
                                         training=training, return_internals=True)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, target, self.label_smoothing)
        real = target != PAD_ID
        weights = tf.cast(real, tf.float32)[:, :, None]
        lengths = tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)           # [B, 1]
        kl, usage = 0.0, []
        for layer, pi in enumerate(internals["policy"]):
            kl += action_regularisation(pi, model.action_average[layer], real)
            usage.append(tf.reduce_sum(tf.reduce_sum(pi * weights, axis=1) / lengths, axis=0))
        return {"loss": loss + self.action_lambda * kl, "nll": nll, "action_kl": kl,
                "tokens": tokens, "action_usage": tf.stack(usage),
                "sentences": tf.cast(tf.shape(target)[0], tf.float32)}

    def update_state(self, model, totals):
        """totals: action_usage and sentences summed over replicas and micro-batches."""
        mean = totals["action_usage"] / tf.maximum(totals["sentences"], 1.0)
        model.action_average.assign(self.alpha * model.action_average + (1 - self.alpha) * mean)


def imitation_cross_entropy(demonstrator_policies, learner_policies, real):
    """L_IL = sum over layers and real positions of H(pi_AT, pi_NAT) (imitate-NAT, Eq. 12)."""
    total = 0.0
    for teacher, learner in zip(demonstrator_policies, learner_policies):
        teacher = tf.stop_gradient(tf.cast(teacher, tf.float32))
        learner = tf.cast(learner, tf.float32)
        h = -tf.reduce_sum(teacher * tf.math.log(tf.maximum(learner, 1e-12)), axis=-1)
        total += tf.reduce_sum(tf.where(real, h, 0.0))
    return total


class ImitationLearning:
    """The learner's objective L_NAT + lambda_2 L_IL (Eq. 15) + length_weight times the length
    classifier's cross-entropy; without a demonstrator (the ablation) L_IL is left out."""

    def __init__(self, demonstrator=None, il_lambda=0.001, length_weight=0.1,
                 label_smoothing=0.1):
        self.demonstrator, self.il_lambda = demonstrator, il_lambda
        self.length_weight, self.label_smoothing = length_weight, label_smoothing

    def __call__(self, model, batch, training):

        source, target = batch["source"], batch["target"]
        lengths = lengths_of(target)
        encoded, source_mask = model.encode(source, training=training)
        logits, internals = model.nat_decode(source, encoded, source_mask, lengths,
                                             tf.shape(target)[1], training, return_internals=True)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, target, self.label_smoothing)
        length_logits = model.length_logits(encoded, source_mask)
        length_nll = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.minimum(lengths, tf.shape(length_logits)[1] - 1), tf.cast(length_logits,
                                                                          tf.float32)))
        out = {"nll": nll, "length_nll": length_nll, "tokens": tokens}
        total = loss + self.length_weight * length_nll
        if self.demonstrator is not None:
            d_encoded, d_mask = self.demonstrator.encode(source)
            _, demo = self.demonstrator.decode(shift_right(target), d_encoded, d_mask,
                                               return_internals=True)
            out["imitation"] = imitation_cross_entropy(demo["policy"], internals["policy"],
                                                       target != PAD_ID)
            total += self.il_lambda * out["imitation"]
        out["loss"] = total
        return out


@dataclasses.dataclass
class DemonstratorSettings:  # architecture dat
    action_lambda: float = 0.001  # weight of the action regularisation L_pi
    action_alpha: float = 0.9  # moving-average rate of the action usage c


@dataclasses.dataclass
class LearnerSettings:  # architecture imitate_nat
    il_lambda: float = 0.001  # lambda_2 of the imitation loss L_IL (Eq. 15)
    length_weight: float = 0.1  # weight of the length classifier's cross-entropy


def build_objective(ctx):
    """The DAT (architecture dat) trains alone; the learner imitates a DAT --teacher_run of its
    decoder depth and number of actions (without one: L_NAT and the length loss only)."""
    cfg, mine, smoothing = ctx.settings, ctx.run.model, ctx.train.label_smoothing
    if mine.architecture == "dat":
        if ctx.teacher_config:
            raise UserError("the DAT trains on its own (no --teacher_run).")
        return ActionRegularisedMLE(cfg.action_lambda, cfg.action_alpha, smoothing)
    teacher = None
    if ctx.teacher_config:
        teacher, path = ctx.teacher()
        theirs = teacher.config
        if theirs.architecture != "dat" or (theirs.decoder_layers,
                                            theirs.imitation.num_actions) \
                != (mine.decoder_layers, mine.imitation.num_actions):
            raise UserError("imitation needs a DAT demonstrator (--architecture=dat) with "
                            "this model's decoder depth and number of actions.")
        ctx.log(f"imitating {path} (lambda_2 {cfg.il_lambda})")
    return ImitationLearning(teacher, cfg.il_lambda, cfg.length_weight, smoothing)


# The learner decodes 2 * 3 + 1 lengths (LPD, delta T = 3); the DAT autoregressively.
METHOD = Method("imitate_nat", ("dat", "imitate_nat"), ("mle",), build_objective,
                {"dat": {"method": "autoregressive", "beam_size": 4, "length_penalty": 0.6},
                 "imitate_nat": {"method": "nat", "length_halfwidth": 3}},
                {"dat": DemonstratorSettings, "imitate_nat": LearnerSettings})
