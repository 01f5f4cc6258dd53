import numpy as np
import tensorflow as tf

from tfnmt.methods.at import KnowledgeDistillation
from tfnmt.methods.losses import label_smoothed_cross_entropy, word_level_kl


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
    from tfnmt.core.config import ModelConfig
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


def test_curriculum_split_follows_p_k():
    from tfnmt.methods.hrt import curriculum_fraction, primary_rows

    for step, total, lam, expected in ((0, 100, 1.0, 0.0), (25, 100, 1.0, 0.25),
                                       (50, 100, 2.0, 0.25), (100, 100, 1.0, 1.0),
                                       (150, 100, 1.0, 1.0)):
        np.testing.assert_allclose(float(curriculum_fraction(step, total, lam)), expected)
    assert primary_rows(8, 0.25).numpy().tolist() == [True] * 2 + [False] * 6
    assert primary_rows(8, 0.0).numpy().sum() == 0 and primary_rows(8, 1.0).numpy().all()


def test_hrt_objective_sums_the_four_task_losses_on_their_rows():
    from tfnmt.core.config import ModelConfig
    from tfnmt.methods import hrt
    from tfnmt.models import build_model
    from tfnmt.decoding.iterative import bidirectional_mask
    from tfnmt.methods.hrt import HybridRegressive

    model = build_model(ModelConfig.from_shape("tiny", vocab_size=30, dropout=0.0))
    target = tf.constant([[11, 12, 13, 14, 3, 0], [15, 16, 17, 3, 0, 0],
                          [18, 19, 20, 21, 22, 3], [23, 24, 3, 0, 0, 0]])
    batch = {"source": tf.constant([[8, 9, 3], [10, 3, 0], [11, 12, 3], [13, 3, 0]]),
             "target": target}
    step = tf.Variable(50)
    objective = HybridRegressive(2, 4, 5, step, 100, tf.random.Generator.from_seed(1),
                                 label_smoothing=0.0)
    got = objective(model, batch, training=False)
    # Direct computation: rows 0-1 primary (p_k = 0.5), rows 2-3 auxiliary; same CMLM masks.
    rng = tf.random.Generator.from_seed(1)
    encoded, mask = model.encode(batch["source"])
    samples = {"at": (hrt.at_sample(target), [2, 3]),
               "cmlm": (hrt.cmlm_sample(target, 4, rng), [2, 3]),
               "skip_at": (hrt.skip_at_sample(target, 2, 5), [0, 1]),
               "skip_cmlm": (hrt.skip_cmlm_sample(target, 2, 4), [0, 1])}
    total = 0.0
    for name, (s, rows) in samples.items():
        self_mask = None if s["causal"] else bidirectional_mask(s["input"])
        logits = model.decode(s["input"], encoded, mask, self_mask=self_mask,
                              positions=s["positions"]).numpy()
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        labels = s["labels"].numpy()
        nll = sum(-logp[r, t, labels[r, t]] for r in rows for t in range(labels.shape[1])
                  if labels[r, t] != 0)
        np.testing.assert_allclose(float(got[f"nll_{name}"]), nll, rtol=1e-4)
        total += nll
    np.testing.assert_allclose(float(got["loss"]), total, rtol=1e-4)
