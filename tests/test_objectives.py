import numpy as np
import tensorflow as tf

from tfnmt.objectives import KnowledgeDistillation, label_smoothed_cross_entropy, word_level_kl


def test_label_smoothed_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype(np.float32)
    labels = np.array([[1, 4, 0], [2, 3, 3]])
    eps = 0.1
    loss, nll, tokens = label_smoothed_cross_entropy(tf.constant(logits), tf.constant(labels), eps)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected_loss = expected_nll = 0.0
    for b in range(2):
        for t in range(3):
            if labels[b, t] == 0:
                continue
            target = np.full(5, eps / 5)
            target[labels[b, t]] += 1 - eps
            expected_loss += -(target * logp[b, t]).sum()
            expected_nll += -logp[b, t, labels[b, t]]
    assert float(tokens) == 5
    np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-5)
    np.testing.assert_allclose(float(nll), expected_nll, rtol=1e-5)


def test_word_level_kl_matches_numpy():
    rng = np.random.default_rng(1)
    teacher = rng.normal(size=(2, 3, 4)).astype(np.float32)
    student = rng.normal(size=(2, 3, 4)).astype(np.float32)
    labels = np.array([[1, 2, 0], [3, 3, 3]])

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(teacher), softmax(student)
    expected = sum((p[b, t] * np.log(p[b, t] / q[b, t])).sum()
                   for b in range(2) for t in range(3) if labels[b, t])
    got = word_level_kl(tf.constant(teacher), tf.constant(student), tf.constant(labels))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    assert float(word_level_kl(tf.constant(teacher), tf.constant(teacher),
                               tf.constant(labels))) < 1e-6


def test_knowledge_distillation_loss_is_nll_plus_lambda_kl():
    from tfnmt.config import ModelConfig
    from tfnmt.models import build_model

    student = build_model(ModelConfig.from_shape("tiny", architecture="hybrid", vocab_size=30,
                                                 decoder_hidden=16, dropout=0.0))
    teacher = build_model(ModelConfig.from_shape("tiny", vocab_size=30, dropout=0.0))
    batch = {"source": tf.constant([[5, 6, 3, 0]]), "target": tf.constant([[7, 8, 9, 3]])}
    terms = KnowledgeDistillation(teacher, kd_lambda=0.5)(student, batch, training=False)
    _, nll, _ = label_smoothed_cross_entropy(student(batch), batch["target"], 0.0)
    kl = word_level_kl(teacher(batch), student(batch), batch["target"])
    np.testing.assert_allclose(float(terms["loss"]), float(nll) + 0.5 * float(kl), rtol=1e-5)
    with tf.GradientTape() as tape:
        loss = KnowledgeDistillation(teacher)(student, batch, training=False)["loss"]
    grads = tape.gradient(loss, teacher.trainable_variables)
    assert all(g is None for g in grads)  # the teacher is frozen
