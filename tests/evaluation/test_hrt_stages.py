"""HRT's two stages taken apart (tfnmt.analyze --mode=hrt_stages)."""

import numpy as np
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.decoding import common
from tfnmt.decoding.iterative import hybrid_regressive_decode
from tfnmt.evaluation.analysis import fill_given, hrt_fill
from tfnmt.models import build_model, named_weights

from tests.conftest import make_run, run_module

MASK, B2 = 4, 5


def test_the_fill_of_hrts_own_skip_at_output_is_its_translation():
    """Given a translation whose every 2nd token is HRT's Skip-AT output z (the others
    anything), hrt_fill fills exactly what HRT's decode filled: rows whose first EOS is z's."""
    model = build_model(ModelConfig.from_shape("tiny", vocab_size=30, dropout=0.0))
    rng = np.random.default_rng(0)
    # Weights from numpy (keras.utils.set_random_seed would reset TensorFlow's context, and
    # with it the tokenizers other tests of this process have loaded).
    for _, weight in sorted(named_weights(model).items()):
        weight.assign(rng.normal(scale=0.3, size=weight.shape).astype("float32"))
    source = np.full([8, 7], PAD_ID, np.int32)
    for row in range(8):
        n = rng.integers(2, 7)
        source[row, :n] = rng.integers(6, 30, n)
        source[row, n] = EOS_ID
    out = hybrid_regressive_decode(model, tf.constant(source), 12, 2, MASK, B2, beam_size=3)
    z, ids = out["skip_ids"].numpy()[:, 0], out["ids"].numpy()[:, 0]
    z_lengths = common.sequence_lengths(tf.constant(z)).numpy()
    lengths = out["lengths"].numpy()[:, 0]
    rows = [r for r in range(8) if z[r, z_lengths[r] - 1] == EOS_ID
            and lengths[r] == 2 * z_lengths[r]]
    assert len(rows) >= 3, (z, ids)
    given = np.full([len(rows), 12], PAD_ID, np.int32)
    for i, r in enumerate(rows):
        given[i, 1:2 * z_lengths[r]:2] = z[r, :z_lengths[r]]
        given[i, 0:2 * z_lengths[r]:2] = 7  # what the fill replaces
    filled = hrt_fill(model, tf.constant(source[rows]), tf.constant(given), 2, MASK).numpy()
    np.testing.assert_array_equal(filled, ids[rows][:, :filled.shape[1]])
    assert (ids[rows][:, filled.shape[1]:] == PAD_ID).all()


def test_fills_of_batched_translations_equal_each_alone(tmp_path, reverse_task):
    """fill_given pads and batches sentences by length: each fills as it does alone."""
    run = make_run(tmp_path / "hrt", reverse_task, objective="hrt")
    model = build_model(run.model)
    sentences = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:7]
    references = open(reverse_task["test.tgt"], encoding="utf-8").read().splitlines()[:7]
    batched, share = fill_given(run, model, sentences, references, batch_size=4)
    alone = [fill_given(run, model, [s], [r])[0][0] for s, r in zip(sentences, references)]
    assert batched == alone and 0.0 <= share <= 1.0


def test_the_command_writes_the_stages_with_the_bleu_signature(tmp_path, trained_run,
                                                               reverse_task):
    """Every stage's BLEU, the reproduced shares and sacreBLEU's signature (without XLA: the
    stages compile five decoders)."""
    import json

    from tfnmt.training.trainer import Trainer

    run = make_run(tmp_path / "hrt", reverse_task, objective="hrt", train_steps=2)
    Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train()
    result = run_module("tfnmt.analyze", "--mode=hrt_stages", f"--runs=hrt={run.run_dir}@latest",
                        f"--teacher_run={trained_run.run_dir}@latest",
                        f"--source={reverse_task['test.src']}",
                        f"--target={reverse_task['test.tgt']}", "--beam_size=2", "--noxla",
                        f"--result={tmp_path / 'stages.json'}")
    assert result.returncode == 0, result.stderr[-2000:]
    values = json.loads((tmp_path / "stages.json").read_text())["values"]
    assert values["bleu_signature"].startswith("nrefs:1|") and values["beam"] == 2
    assert set(values["bleu"]) == {"teacher", "hrt", "hrt_as_at", "fill_of_teacher",
                                   "fill_of_reference"}
    assert set(values["fill_reproduces"]) == {"teacher", "reference"}
