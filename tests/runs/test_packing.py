"""Packed runs (tfnmt.pack_run): the decoding files of a run, whole or absent, translating as the
original, refused by training."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.core.errors import UserError
from tfnmt.inference.translator import Translator
from tfnmt.models import named_weights
from tfnmt.runs.averaging import average_checkpoints
from tfnmt.runs.packing import pack_run, snapshot_run
from tfnmt.training.trainer import Trainer

from tests.conftest import run_module


@pytest.fixture
def averaged_run(tmp_path, trained_run):
    """A copy of the trained tiny run (checkpoints 30 and 60) with its averaged checkpoint."""
    shutil.copytree(trained_run.run_dir, tmp_path / "run")
    run = runs.load(str(tmp_path / "run"))
    average_checkpoints(run, 2)
    return run


def translations(run, sentences):
    model, _ = runs.restore_model(run, "averaged")
    source, target = run.tokenizers()
    translator = Translator(model, source, target, DecodeConfig(beam_size=2, xla=False),
                            run.model.max_length)
    return [n_best[0] for n_best in translator.translate(sentences)]


def test_a_packed_run_holds_the_averaged_weights_and_translates_alike(tmp_path, averaged_run,
                                                                        reverse_task):
    result = run_module("tfnmt.pack_run", f"--run_dir={averaged_run.run_dir}",
                        f"--output={tmp_path / 'packed'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "averaged (step 60)" in result.stdout
    packed = runs.load(str(tmp_path / "packed"))
    assert sorted(os.listdir(packed.run_dir)) == ["checkpoints", "config.json", "packed.json",
                                                  "training.json", "vocab"]
    assert os.listdir(packed.checkpoint_dir) == ["averaged"]  # no training checkpoint
    a, _ = runs.restore_model(averaged_run, "averaged")
    b, _ = runs.restore_model(packed, "averaged")
    wa, wb = named_weights(a), named_weights(b)
    assert sorted(wa) == sorted(wb)
    for name in wa:
        np.testing.assert_array_equal(wa[name].numpy(), wb[name].numpy(), err_msg=name)
    sentences = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:8]
    assert translations(packed, sentences) == translations(averaged_run, sentences)
    # The packed copy stands alone: the original's removal changes nothing.
    shutil.rmtree(averaged_run.run_dir)
    assert runs.find_checkpoint(runs.load(packed.run_dir), "averaged").startswith(
        os.path.join(packed.run_dir, "checkpoints", "averaged"))


def test_packing_keeps_what_is_on_disk_and_leaves_nothing_half_written(tmp_path, averaged_run):
    output = tmp_path / "packed"
    output.mkdir()
    (output / "mine.txt").write_text("kept")
    with pytest.raises(UserError, match="exists; pack into a new directory"):
        pack_run(averaged_run, str(output))
    assert os.listdir(output) == ["mine.txt"]
    with pytest.raises(UserError, match="has no best checkpoint to pack"):
        pack_run(averaged_run, str(tmp_path / "other"), ("averaged", "best"))
    assert sorted(os.listdir(tmp_path)) == ["packed", "run"]  # no partial copy, no temporary


def test_a_training_checkpoint_is_packed_as_its_weights_under_its_own_name(tmp_path,
                                                                          averaged_run):
    """--checkpoints=ckpt-30: the step-30 weights, without the optimizer state, where a run
    keeps them (the ablations decode a run's step-3,000 weights by name or path)."""
    pack_run(averaged_run, str(tmp_path / "packed"), ("averaged", "ckpt-30"))
    packed = runs.load(str(tmp_path / "packed"))
    path = runs.find_checkpoint(packed, "ckpt-30")
    assert path == os.path.join(packed.checkpoint_dir, "ckpt-30")
    names = [name for name, _ in tf.train.list_variables(path)]
    assert not [n for n in names if n.startswith("optimizer")]
    assert [n for n in tf.train.list_variables(os.path.join(averaged_run.checkpoint_dir,
                                                            "ckpt-30")) if "optimizer" in n[0]]
    a, _ = runs.restore_model(averaged_run, "ckpt-30")
    b, _ = runs.restore_model(packed, "ckpt-30")
    for name, value in named_weights(a).items():
        np.testing.assert_array_equal(named_weights(b)[name].numpy(), value.numpy(), err_msg=name)
    with pytest.raises(UserError, match="has no ckpt-45 checkpoint to pack"):
        pack_run(averaged_run, str(tmp_path / "other"), ("ckpt-45",))
    with pytest.raises(UserError, match="training checkpoints by name .*not latest"):
        pack_run(averaged_run, str(tmp_path / "other"), ("latest",))
    assert not (tmp_path / "other").exists()


def test_a_packed_run_cannot_resume_training(tmp_path, averaged_run):
    pack_run(averaged_run, str(tmp_path / "packed"))
    packed = runs.load(str(tmp_path / "packed"))
    with pytest.raises(UserError, match="is a packed run .* cannot resume training"):
        Trainer(packed, tf.distribute.get_strategy(), log=lambda m: None).train()
    assert sorted(os.listdir(packed.checkpoint_dir)) == ["averaged"]  # nothing written


def test_a_new_run_starts_from_a_packed_runs_weights(tmp_path, averaged_run, reverse_task):
    from tests.conftest import make_run

    pack_run(averaged_run, str(tmp_path / "packed"))
    run = make_run(tmp_path / "new", reverse_task, train_steps=1, learning_rate=1e-12,
                   init_from=str(tmp_path / "packed") + "@averaged")
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    trainer.train()
    source, _ = runs.restore_model(averaged_run, "averaged")
    mine = named_weights(trainer.model)
    for name, value in named_weights(source).items():
        np.testing.assert_allclose(mine[name].numpy(), value.numpy(), atol=1e-6, err_msg=name)


def test_a_snapshot_resumes_exactly_where_the_run_stopped(tmp_path, reverse_task):
    """A run in progress, snapshot and copied to another directory (a new machine), resumes to
    the weights of the uninterrupted run; the snapshot holds one training checkpoint and the
    best weights, and a new snapshot replaces the old."""
    from tests.conftest import make_run

    def run_at(name):
        run = make_run(tmp_path / name, reverse_task, train_steps=8, save_every=2, eval_every=2,
                       eval_bleu_sentences=0)
        run.data.valid_source = reverse_task["test.src"]
        run.data.valid_target = reverse_task["test.tgt"]
        return run

    quiet = dict(log=lambda m: None)
    full = Trainer(run_at("full"), tf.distribute.get_strategy(), **quiet)
    full.train()
    Trainer(run_at("stopped"), tf.distribute.get_strategy(), **quiet).train(max_steps=4)
    kept = tmp_path / "kept" / "stopped.snapshot"
    result = run_module("tfnmt.pack_run", f"--run_dir={tmp_path / 'stopped'}",
                        f"--output={kept}", "--snapshot", "--checkpoints=ckpt-2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"snapshot of {tmp_path / 'stopped'} at step 4" in result.stdout
    checkpoints = sorted(os.listdir(kept / "checkpoints"))
    assert [n for n in checkpoints if n.startswith("ckpt-")] == [
        "ckpt-2.data-00000-of-00001", "ckpt-2.index",  # asked for: its weights alone
        "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert json.load(open(kept / "snapshot.json"))["weights"] == [2]
    step2, _ = runs.restore_model(runs.load(str(tmp_path / "stopped")), "ckpt-2")
    kept2, _ = runs.restore_model(runs.load(str(kept)), "ckpt-2")
    for name, value in named_weights(step2).items():
        np.testing.assert_array_equal(named_weights(kept2)[name].numpy(), value.numpy())
    assert "train.lock" not in os.listdir(kept)
    best = runs.find_checkpoint(runs.load(str(kept)), "best")
    assert best.startswith(str(kept))
    # The original is gone; its copy resumes, wherever it lies, to the uninterrupted weights.
    shutil.rmtree(tmp_path / "stopped")
    shutil.copytree(kept, tmp_path / "elsewhere")
    # The snapshot's checkpoint is its run's own (listed, kept and averaged as the ones saved
    # after it); a state file written by hand names it without a timestamp: resumed all the same.
    listed = tf.train.CheckpointManager(tf.train.Checkpoint(), str(kept / "checkpoints"), 5)
    assert [os.path.basename(p) for p in listed.checkpoints] == ["ckpt-4"]
    state = tmp_path / "elsewhere" / "checkpoints" / "checkpoint"
    state.write_text("".join(line for line in state.read_text().splitlines(keepends=True)
                             if "timestamp" not in line))
    said = []
    resumed = Trainer(run_at("elsewhere"), tf.distribute.get_strategy(), log=said.append)
    assert resumed.train() == 8
    assert "resumed from step 4" in said  # not trained again from step 0 to the same weights
    assert resumed.fingerprint() == full.fingerprint()
    # A later snapshot replaces the earlier one whole; a directory that is not one is refused.
    snapshot_run(runs.load(str(tmp_path / "elsewhere")), str(kept))
    assert json.load(open(kept / "snapshot.json"))["step"] == 8
    assert sorted(os.listdir(tmp_path / "kept")) == ["stopped.snapshot"]
    (tmp_path / "mine").mkdir()
    with pytest.raises(UserError, match="exists and is not a snapshot"):
        snapshot_run(runs.load(str(tmp_path / "elsewhere")), str(tmp_path / "mine"))
    assert os.listdir(tmp_path / "mine") == []


def test_a_run_being_trained_is_not_snapshot(tmp_path, trained_run):
    import fcntl

    shutil.copytree(trained_run.run_dir, tmp_path / "run")
    with open(tmp_path / "run" / "train.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="is being trained; stop it first"):
            snapshot_run(runs.load(str(tmp_path / "run")), str(tmp_path / "kept"))
    assert not (tmp_path / "kept").exists()
    snapshot_run(runs.load(str(tmp_path / "run")), str(tmp_path / "kept"))  # unlocked: taken
    assert json.load(open(tmp_path / "kept" / "snapshot.json"))["step"] == 60
