"""HRT's four training tasks on hand-written sentences (the paper's Figure 3 convention)."""

import numpy as np
import tensorflow as tf

from tfnmt.methods.cmlm import cmlm_sample
from tfnmt.methods.hrt import at_sample, chunked_target, skip_at_sample, skip_cmlm_sample

E, P, M, B2, B3 = 3, 0, 4, 5, 6
y1, y2, y3, y4, y5 = 11, 12, 13, 14, 15
# Row 0: y1..y5 EOS (6 tokens); row 1: y1..y4 EOS (5 tokens) and one PAD.
TARGET = tf.constant([[y1, y2, y3, y4, y5, E], [y1, y2, y3, y4, E, P]])


def as_lists(sample):
    return {k: v.numpy().tolist() for k, v in sample.items() if k != "causal"}


def test_chunked_target_pads_with_eos_to_a_multiple_of_k():
    assert chunked_target(TARGET, 2).numpy().tolist() == [[y1, y2, y3, y4, y5, E],
                                                          [y1, y2, y3, y4, E, E]]
    assert chunked_target(TARGET, 4).numpy().tolist() == [[y1, y2, y3, y4, y5, E, E, E],
                                                          [y1, y2, y3, y4, E, E, E, E]]


def test_task_at():
    s = at_sample(TARGET)
    assert s["causal"]
    assert as_lists(s) == {
        "input": [[2, y1, y2, y3, y4, y5], [2, y1, y2, y3, y4, P]],
        "positions": [[0, 1, 2, 3, 4, 5]] * 2,
        "labels": TARGET.numpy().tolist()}


def test_task_skip_at_k2_keeps_original_positions():
    s = skip_at_sample(TARGET, 2, B2)
    assert s["causal"]
    assert as_lists(s) == {
        "input": [[B2, y2, y4], [B2, y2, y4]],
        "positions": [[0, 2, 4]] * 2,
        "labels": [[y2, y4, E], [y2, y4, E]]}


def test_task_skip_at_k3():
    s = skip_at_sample(TARGET, 3, B3)
    assert as_lists(s) == {
        "input": [[B3, y3], [B3, y3]],
        "positions": [[0, 3]] * 2,
        "labels": [[y3, E], [y3, E]]}


def test_task_skip_cmlm_k2_and_k3():
    s = skip_cmlm_sample(TARGET, 2, M)
    assert not s["causal"]
    assert as_lists(s) == {
        "input": [[M, y2, M, y4, M, E], [M, y2, M, y4, M, E]],
        "positions": [[1, 2, 3, 4, 5, 6]] * 2,
        "labels": [[y1, P, y3, P, y5, P], [y1, P, y3, P, E, P]]}
    s = skip_cmlm_sample(TARGET, 3, M)
    assert as_lists(s) == {
        "input": [[M, M, y3, M, M, E], [M, M, y3, M, M, E]],
        "positions": [[1, 2, 3, 4, 5, 6]] * 2,
        "labels": [[y1, y2, P, y4, y5, P], [y1, y2, P, y4, E, P]]}


def test_task_cmlm_masks_between_one_and_all_real_tokens():
    rng = tf.random.Generator.from_seed(3)
    counts = []
    for _ in range(50):
        s = cmlm_sample(TARGET, M, rng)
        inputs, labels = s["input"].numpy(), s["labels"].numpy()
        masked = inputs == M
        assert not s["causal"]
        assert (labels[masked] == TARGET.numpy()[masked]).all() and (labels[~masked] == P).all()
        assert (inputs[~masked] == TARGET.numpy()[~masked]).all()
        assert not masked[1, 5]  # padding is never masked
        counts.append(masked.sum(axis=1))
    counts = np.array(counts)
    assert counts.min() >= 1 and counts[:, 0].max() <= 6 and counts[:, 1].max() <= 5
    assert len(set(counts[:, 0])) > 3  # the number of masks varies


def test_row_ranks_equal_a_stable_double_argsort():
    from tfnmt.data.sequences import row_ranks

    scores = np.random.default_rng(0).integers(0, 5, size=(6, 9)).astype(np.float32)  # ties
    expected = np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1, kind="stable")
    np.testing.assert_array_equal(row_ranks(tf.constant(scores)).numpy(), expected)
    compiled = tf.function(row_ranks, jit_compile=True)
    np.testing.assert_array_equal(compiled(tf.constant(scores)).numpy(), expected)


def test_row_ranks_within_segments_equal_each_segment_ranked_alone():
    """Mask-predict's packed rows rank every candidate's positions among its own."""
    from tfnmt.data.sequences import row_ranks

    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(3, 10)).astype(np.float32)
    segments = np.sort(rng.integers(-1, 3, size=(3, 10)), axis=1)
    expected = np.zeros_like(segments)
    for b in range(3):
        for s in set(segments[b]):
            at = np.flatnonzero(segments[b] == s)
            expected[b, at] = np.argsort(np.argsort(scores[b, at], kind="stable"), kind="stable")
    got = row_ranks(tf.constant(scores), tf.constant(segments))
    np.testing.assert_array_equal(got.numpy(), expected)


def test_the_curriculum_stays_when_a_run_trains_longer(tmp_path, reverse_task):
    """T is kept in the run: a run made with 100 train steps has T = 100; one made before the
    setting existed reads its train_steps as T; resuming with more steps and T unchanged is the
    same run, with more steps alone it would move the curriculum and is refused."""
    import json

    import pytest

    from tfnmt import methods, runs
    from tfnmt.core.errors import UserError

    from tests.conftest import make_run

    run = make_run(tmp_path / "hrt", reverse_task, objective="hrt", train_steps=100)
    assert run.train.settings.curriculum_steps == 100
    path = tmp_path / "hrt" / "config.json"
    values = json.loads(path.read_text())
    del values["train"]["settings"]["curriculum_steps"]  # as written before the setting
    path.write_text(json.dumps(values))
    assert runs.load(str(tmp_path / "hrt")).train.settings.curriculum_steps == 100

    def resume(**flat):
        train = methods.train_config(run.model, **{**values["train"], "settings": None,
                                                   "objective": "hrt", **flat})
        return runs.prepare(str(tmp_path / "hrt"), run.model, run.data, train)

    assert resume(train_steps=300, curriculum_steps=100).train.settings.curriculum_steps == 100
    with pytest.raises(UserError, match=r"settings.curriculum_steps 100 -> 300"):
        resume(train_steps=300)
