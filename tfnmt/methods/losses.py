"""Loss terms. Each returns sums over real (non-padding) target tokens; the trainer normalises
by the number of target tokens in the global batch, so every replica count gives one update."""

import tensorflow as tf

from tfnmt.data.tokenizer import PAD_ID


def token_cross_entropy(logits, labels, epsilon):
    """Per-token (1 - eps) * -log p(y) + eps * mean_v(-log p(v)) (Szegedy et al. 2016) and
    -log p(y), each [B, T], with the [B, T] weights (0 at PAD_ID labels)."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    weights = tf.cast(labels != PAD_ID, tf.float32)
    nll = -tf.gather(log_probs, labels, batch_dims=2)
    smooth = -tf.reduce_mean(log_probs, axis=-1)
    return (1.0 - epsilon) * nll + epsilon * smooth, nll, weights


def label_smoothed_cross_entropy(logits, labels, epsilon):
    """logits [B, T, V], labels [B, T] with PAD_ID = padding. Returns (loss_sum, nll_sum,
    tokens) of token_cross_entropy over the real labels."""
    loss, nll, weights = token_cross_entropy(logits, labels, epsilon)
    return (tf.reduce_sum(loss * weights), tf.reduce_sum(nll * weights),
            tf.reduce_sum(weights))


def word_level_kl(teacher_logits, student_logits, labels):
    """Sum over real target positions of KL(P_teacher || P_student) over the vocabulary."""
    teacher = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32))
    student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32))
    kl = tf.reduce_sum(tf.exp(teacher) * (teacher - student), axis=-1)
    return tf.reduce_sum(kl * tf.cast(labels != PAD_ID, tf.float32))
