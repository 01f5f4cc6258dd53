"""The autoregressive baselines (Transformer teacher, deep-encoder/shallow-decoder ATs, RNMT): MLE, or word-level KD from a teacher."""

import tensorflow as tf

from tfnmt.core.errors import UserError
from tfnmt.methods.base import Method
from tfnmt.methods.losses import label_smoothed_cross_entropy, word_level_kl


class MaximumLikelihood:
    """Teacher-forced label-smoothed cross-entropy: the AT training objective."""

    def __init__(self, label_smoothing=0.1):
        self.label_smoothing = label_smoothing

    def __call__(self, model, batch, training):
        logits = model(batch, training=training)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, batch["target"],
                                                         self.label_smoothing)
        return {"loss": loss, "nll": nll, "tokens": tokens}


class KnowledgeDistillation:
    """Eq. 1 of the Hybrid paper as a loss: NLL + lambda * KL(P_teacher || P_student), the KL
    per target position with the frozen teacher teacher-forced on the same prefix."""

    def __init__(self, teacher, kd_lambda=1.0, label_smoothing=0.0):
        self.teacher, self.kd_lambda, self.label_smoothing = teacher, kd_lambda, label_smoothing

    def __call__(self, model, batch, training):
        logits = model(batch, training=training)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, batch["target"],
                                                         self.label_smoothing)
        teacher_logits = tf.stop_gradient(self.teacher(batch, training=False))
        kl = word_level_kl(teacher_logits, logits, batch["target"])
        return {"loss": loss + self.kd_lambda * kl, "nll": nll, "kl": kl, "tokens": tokens}


def build_objective(ctx):
    """MLE, or with a --teacher_run word-level KD (Eq. 1 of the Hybrid paper)."""
    teacher_config = ctx.teacher_config
    if not teacher_config:
        return MaximumLikelihood(ctx.train.label_smoothing)
    teacher, path = ctx.teacher()
    if teacher.config.architecture not in ("transformer", "dat", "hybrid", "rnmt"):
        raise UserError(f"word-level KD needs an autoregressive teacher (its next-token "
                        f"distributions); {path} is a {teacher.config.architecture} run.")
    ctx.log(f"distilling from {path} (lambda {teacher_config.kd_lambda})")
    return KnowledgeDistillation(teacher, teacher_config.kd_lambda,
                                 teacher_config.kd_label_smoothing)


# The GRU RNMT is the Hybrid paper's baseline: its beam 12 and length penalty 1.0.
METHOD = Method("at", ("transformer", "rnmt"), ("mle",), build_objective,
                {None: {"method": "autoregressive", "beam_size": 4, "length_penalty": 0.6},
                 "rnmt": {"beam_size": 12, "length_penalty": 1.0}})
