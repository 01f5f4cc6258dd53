"""Loss terms. Each returns sums over real (non-padding) target tokens; the trainer normalises
by the number of target tokens in the global batch, so every replica count gives one update."""

import tensorflow as tf

from tfnmt.data.tokenizer import PAD_ID


def label_smoothed_cross_entropy(logits, labels, epsilon):
    """Per-token loss (1 - eps) * -log p(y) + eps * mean_v(-log p(v)) (Szegedy et al. 2016).

    logits [B, T, V], labels [B, T] with PAD_ID = padding. Returns (loss_sum, nll_sum, tokens).
    """
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    weights = tf.cast(labels != PAD_ID, tf.float32)
    nll = -tf.gather(log_probs, labels, batch_dims=2)
    smooth = -tf.reduce_mean(log_probs, axis=-1)
    loss = (1.0 - epsilon) * nll + epsilon * smooth
    return (tf.reduce_sum(loss * weights), tf.reduce_sum(nll * weights),
            tf.reduce_sum(weights))


class MaximumLikelihood:
    """Teacher-forced label-smoothed cross-entropy: the AT training objective."""

    def __init__(self, label_smoothing=0.1):
        self.label_smoothing = label_smoothing

    def __call__(self, model, batch, training):
        logits = model(batch, training=training)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, batch["target"],
                                                         self.label_smoothing)
        return {"loss": loss, "nll": nll, "tokens": tokens}


def word_level_kl(teacher_logits, student_logits, labels):
    """Sum over real target positions of KL(P_teacher || P_student) over the vocabulary."""
    teacher = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32))
    student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32))
    kl = tf.reduce_sum(tf.exp(teacher) * (teacher - student), axis=-1)
    return tf.reduce_sum(kl * tf.cast(labels != PAD_ID, tf.float32))


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
