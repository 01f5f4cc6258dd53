import numpy as np
import tensorflow as tf

from tfnmt.objectives import label_smoothed_cross_entropy


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
