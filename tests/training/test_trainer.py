import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig, GRUConfig, ModelConfig, TeacherConfig
from tfnmt.core.errors import UserError
from tfnmt.data.pipeline import make_dataset
from tfnmt.inference.translator import Translator
from tfnmt.models import named_weights
from tfnmt.training.trainer import Trainer

from tests.conftest import make_run


def weights(trainer):
    return {k: v.numpy() for k, v in named_weights(trainer.model).items()}


def one_batch(run, size):
    ds = make_dataset(run.data.train_source, run.data.train_target, run.source_vocab,
                      run.target_vocab, run.data, training=False)
    for batch in ds:
        if batch["source"].shape[0] >= size:
            return {k: v[:size] for k, v in batch.items()}
    raise AssertionError("no batch large enough")


def step(trainer, dataset, steps):
    iterator = iter(trainer.strategy.experimental_distribute_dataset(dataset))
    for _ in range(steps):
        trainer._train_step(iterator)


# Attention key biases have a gradient of exactly zero in exact arithmetic (softmax is shift
# invariant); Adam with a tiny epsilon turns their float noise into full steps, so the
# comparisons below use an epsilon that leaves noise-sized gradients without effect.
NOISE_PROOF = dict(adam_epsilon=1e-3, learning_rate=1e-2)


def test_two_replicas_give_the_same_update_as_one_device(tmp_path, reverse_task, two_replicas):
    one = Trainer(make_run(tmp_path / "one", reverse_task, **NOISE_PROOF),
                  tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = Trainer(make_run(tmp_path / "two", reverse_task, **NOISE_PROOF), two_replicas)
    assert two.strategy.num_replicas_in_sync == 2
    before = weights(one)
    for name, value in weights(two).items():
        np.testing.assert_array_equal(value, before[name])
    batch = one_batch(one.run, 16)
    # Replicas get different numbers of real tokens: the loss must be normalised globally.
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    step(one, dataset, 3)
    step(two, dataset, 3)
    after_one, after_two = weights(one), weights(two)
    assert np.mean([np.abs(after_one[k] - before[k]).max() > 1e-4 for k in before]) > 0.5
    for name in before:
        np.testing.assert_allclose(after_two[name], after_one[name], atol=2e-6, err_msg=name)


def test_gradient_accumulation_equals_one_large_batch(tmp_path, reverse_task):
    big = Trainer(make_run(tmp_path / "big", reverse_task, **NOISE_PROOF),
                  tf.distribute.get_strategy())
    acc = Trainer(make_run(tmp_path / "acc", reverse_task, accumulate_steps=2, **NOISE_PROOF),
                  tf.distribute.get_strategy())
    batch = one_batch(big.run, 16)
    halves = [{k: v[:5] for k, v in batch.items()}, {k: v[5:] for k, v in batch.items()}]
    big_iter = iter(tf.data.Dataset.from_tensors(batch).repeat())
    acc_iter = iter(tf.data.Dataset.from_tensors(halves[0]).concatenate(
        tf.data.Dataset.from_tensors(halves[1])).repeat())
    for _ in range(2):
        big._train_step(big_iter)
        acc._train_step(acc_iter)
    w_big, w_acc = weights(big), weights(acc)
    for name in w_big:
        np.testing.assert_allclose(w_acc[name], w_big[name], atol=2e-6, err_msg=name)


def test_tiny_model_learns_to_reverse(tmp_path, reverse_task):
    model = ModelConfig(d_model=64, ffn_dim=128, num_heads=4, encoder_layers=2,
                        decoder_layers=2, dropout=0.0)
    # Exact match reaches 0.90 at step 200 and 0.92 from step 400 on (measured to step 700).
    # Without XLA: the tests' XLA runs at -O0 (conftest), 0.19 s a step against 0.08 here;
    # that XLA trains the Transformer as the graph does is
    # test_models_train_identically_with_and_without_xla.
    run = make_run(tmp_path / "reverse", reverse_task, model=model, train_steps=400,
                   warmup_steps=100, learning_rate=2e-3, save_every=400, batch_tokens=1024)
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    assert trainer.train() == 400
    source_tok, target_tok = run.tokenizers()
    translator = Translator(trainer.model, source_tok, target_tok,
                            DecodeConfig(beam_size=1, batch_size=50, xla=False),
                            run.model.max_length)  # greedy under XLA: tests/test_cli.py
    sources = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()
    targets = open(reverse_task["test.tgt"], encoding="utf-8").read().splitlines()
    outputs = [n_best[0][0] for n_best in translator.translate(sources)]
    accuracy = np.mean([o == t for o, t in zip(outputs, targets)])
    print(f"reverse-task exact-match accuracy {accuracy:.3f}")
    assert accuracy >= 0.9, (accuracy, list(zip(outputs, targets))[:5])


def test_mixed_bfloat16_trains_with_float32_weights(tmp_path, reverse_task):
    trainer = Trainer(make_run(tmp_path / "bf16", reverse_task, mixed_precision="mixed_bfloat16",
                               train_steps=30), tf.distribute.get_strategy(), log=lambda m: None)
    assert all(v.dtype == "float32" for v in trainer.model.trainable_variables)
    batch = one_batch(trainer.run, 16)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    losses = [float(trainer._train_step(iterator)["loss"]) for _ in range(30)]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]
    assert trainer.model.compute_dtype == "bfloat16"
    # The policy is scoped to the trainer: models restored for decoding compute in float32.
    trainer.save()
    restored, _ = runs.restore_model(trainer.run, "latest")
    assert restored.compute_dtype == "float32"


@pytest.mark.parametrize("precision,flags,warned", [
    ("mixed_bfloat16", {"avx2", "fma"}, True),
    ("mixed_bfloat16", {"avx2", "avx512f", "avx512_bf16"}, False),
    ("mixed_bfloat16", {"amx_tile", "amx_bf16"}, False),
    ("mixed_bfloat16", None, False),  # flags unknown (not Linux): nothing to say
    ("float32", {"avx2"}, False)])
def test_bfloat16_on_a_cpu_without_its_instructions_is_named(tmp_path, reverse_task, monkeypatch,
                                                             precision, flags, warned):
    import tfnmt.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_flags", lambda: flags)
    said = []
    Trainer(make_run(tmp_path / "r", reverse_task, mixed_precision=precision),
            tf.distribute.get_strategy(), log=said.append)
    assert [m for m in said if "bfloat16 instructions" in m] == ([
        "warning: --mixed_precision=mixed_bfloat16 on a CPU without bfloat16 instructions "
        "(amx_bf16 or avx512_bf16) trains slower than float32; --mixed_precision=float32 is "
        "faster here."] if warned else [])


def test_cpu_flags_reads_the_first_processors_flags(tmp_path):
    from tfnmt.core.provenance import cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\n"
                    "flags\t\t: fpu\n")
    assert cpu_flags(str(info)) == {"fpu", "avx2", "fma"}
    assert cpu_flags(str(tmp_path / "none")) is None


def test_distillation_student_trains_against_a_frozen_teacher(tmp_path, trained_run,
                                                              reverse_task):
    from tfnmt.models import named_weights as nw

    student_cfg = ModelConfig(architecture="hybrid", d_model=32, ffn_dim=64, num_heads=2,
                              encoder_layers=1, decoder_layers=1, gru=GRUConfig(hidden=32),
                              dropout=0.0)
    run = make_run(tmp_path / "student", reverse_task, model=student_cfg, train_steps=40,
                   teacher_run=trained_run.run_dir, kd_lambda=1.0)
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    teacher = trainer.objective.teacher
    before = {k: v.numpy() for k, v in nw(teacher).items()}
    batch = one_batch(run, 16)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    outs = [trainer._train_step(iterator) for _ in range(40)]
    assert float(outs[-1]["kl"]) < 0.7 * float(outs[0]["kl"])
    for name, value in nw(teacher).items():
        np.testing.assert_array_equal(value.numpy(), before[name])  # frozen


def test_distillation_loss_is_the_plain_nll_plus_lambda_kl(tmp_path, trained_run, reverse_task):
    run = make_run(tmp_path / "kd", reverse_task, teacher_run=trained_run.run_dir, kd_lambda=0.5,
                   label_smoothing=0.1)
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    terms = trainer.objective(trainer.model, one_batch(run, 8), training=False)
    # --label_smoothing belongs to the MLE objective; Eq. 1 of the Hybrid paper has plain NLL.
    np.testing.assert_allclose(float(terms["loss"]), float(terms["nll"]) + 0.5 * float(terms["kl"]),
                               rtol=1e-5)
    smoothed = make_run(tmp_path / "kd_ls", reverse_task, teacher_run=trained_run.run_dir,
                        kd_label_smoothing=0.1)
    trainer = Trainer(smoothed, tf.distribute.get_strategy(), log=lambda m: None)
    terms = trainer.objective(trainer.model, one_batch(run, 8), training=False)
    assert float(terms["loss"]) > float(terms["nll"]) + float(terms["kl"]) + 1e-3


@pytest.mark.parametrize("checkpoint", ["", "@ckpt-30"])
def test_init_from_copies_the_other_runs_weights(tmp_path, trained_run, reverse_task, checkpoint):
    """From its best checkpoint by default, or the one named after "@" (here an earlier one)."""
    run = make_run(tmp_path / "finetune", reverse_task, train_steps=1,
                   init_from=trained_run.run_dir + checkpoint, learning_rate=1e-12)
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    trainer.train()
    source, _ = runs.restore_model(trained_run, checkpoint[1:] or "best")
    mine = weights(trainer)
    for name, value in named_weights(source).items():
        np.testing.assert_allclose(mine[name], value.numpy(), atol=1e-6, err_msg=name)


def test_init_from_a_run_with_another_vocabulary_is_refused(tmp_path, trained_run, reverse_task):
    other = tmp_path / "other_vocab"
    shutil.copytree(trained_run.run_dir, other)
    with open(other / "vocab" / "target.model", "ab") as f:
        f.write(b"\0")
    run = make_run(tmp_path / "finetune", reverse_task, train_steps=1, init_from=str(other))
    with pytest.raises(UserError, match="the --init_from run .* uses another vocabulary"):
        Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train()
    assert tf.train.latest_checkpoint(run.checkpoint_dir) is None  # nothing trained


def test_init_from_a_shallower_run_copies_the_layers_it_has(tmp_path, trained_run, reverse_task):
    deep = ModelConfig.from_shape("tiny", dropout=0.0)
    deep.encoder_layers = 2
    run = make_run(tmp_path / "deep", reverse_task, model=deep, train_steps=1,
                   init_from=trained_run.run_dir, learning_rate=1e-12)
    lines = []
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lines.append)
    trainer.train()
    source = {k: v.numpy() for k, v in named_weights(runs.restore_model(trained_run)[0]).items()}
    mine = weights(trainer)
    extra = sorted(set(mine) - set(source))
    assert extra and all(name.startswith("encoder.layer_1.") for name in extra), extra
    # the log names them by layer
    assert f"{len(extra)} weights not in " in lines[0]
    assert lines[0].endswith(f" start fresh: encoder.layer_1.* ({len(extra)})"), lines[0]
    for name, value in source.items():
        np.testing.assert_allclose(mine[name], value, atol=1e-6, err_msg=name)


def test_each_training_process_records_its_segment(tmp_path, reverse_task):
    import json

    run = make_run(tmp_path / "segments", reverse_task, train_steps=6, save_every=3)
    Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train(max_steps=3)
    Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train()
    segments = json.loads((tmp_path / "segments" / "training.json").read_text())
    assert [(s["from_step"], s["to_step"]) for s in segments] == [(0, 3), (3, 6)]
    assert all(s["wall_seconds"] > 0 for s in segments)
    assert all(s["command"] and s["git_commit"] for s in segments)  # how it was trained


def test_hrt_objective_trains_under_xla_with_mixed_distillation(tmp_path, reverse_task):
    task = dict(reverse_task)
    run = make_run(tmp_path / "hrt", task, train_steps=40, objective="hrt", xla=True,
                   p_raw=0.5)
    run.data.train_distilled = task["train.tgt"]  # stands in for teacher output
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    batch = one_batch(run, 16)
    batch["distilled"] = batch["target"]
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    outs = [trainer._train_step(iterator) for _ in range(40)]
    assert float(outs[-1]["loss"]) < 0.7 * float(outs[0]["loss"])
    # p_k grows with the step: no primary-task tokens at the start, many at the end.
    assert float(outs[0]["nll_skip_at"]) == 0.0 and float(outs[-1]["nll_skip_at"]) > 0.0


def test_cmlm_objective_trains(tmp_path, reverse_task):
    model = ModelConfig.from_shape("tiny", architecture="cmlm", dropout=0.0, max_length=16)
    run = make_run(tmp_path / "cmlm", reverse_task, model=model, train_steps=30,
                   objective="cmlm", xla=True)
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    iterator = iter(tf.data.Dataset.from_tensors(one_batch(run, 16)).repeat())
    outs = [trainer._train_step(iterator) for _ in range(30)]
    assert float(outs[-1]["length_nll"]) < 0.7 * float(outs[0]["length_nll"])


def test_models_train_identically_with_and_without_xla(tmp_path, reverse_task):
    """The Transformer, the GRU decoder's scan (and the BiGRU encoder's) must compile under XLA,
    forward and backward, and give the same update as the graph without XLA."""
    # The Transformer, each attention of the GRU decoder once, and the BiGRU encoder (rnmt) once.
    for architecture, attention in (("transformer", None), ("hybrid", "additive"),
                                    ("hybrid", "multihead"), ("rnmt", "dot")):
        gru = dict(attention=attention, decoder_hidden=24) if attention else {}
        trained = {}
        for xla in (False, True):
            model = ModelConfig.from_shape("tiny", architecture=architecture, dropout=0.0, **gru)
            run = make_run(tmp_path / f"{architecture}_{attention}_{xla}", reverse_task,
                           model=model, xla=xla, **NOISE_PROOF)
            trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
            before = weights(trainer)
            step(trainer, tf.data.Dataset.from_tensors(one_batch(run, 8)).repeat(), 2)
            trained[xla] = weights(trainer)
        assert max(np.abs(trained[True][k] - before[k]).max() for k in before) > 1e-4
        for name in before:
            np.testing.assert_allclose(trained[True][name], trained[False][name], atol=1e-5,
                                       err_msg=f"{architecture}/{attention}: {name}")


def test_patience_stops_training_and_a_resume_stays_stopped(tmp_path, reverse_task):
    import json

    # A learning rate of 0 keeps every validation score equal to the first: no improvement.
    run = make_run(tmp_path / "patience", reverse_task, train_steps=100, learning_rate=0.0,
                   eval_every=2, save_every=100, eval_bleu_sentences=0, patience=2)
    run.data.valid_source = reverse_task["test.src"]
    run.data.valid_target = reverse_task["test.tgt"]
    assert Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train() == 6
    history = json.loads((tmp_path / "patience" / "validation.json").read_text())
    assert [entry["step"] for entry in history] == [2, 4, 6]
    assert tf.train.latest_checkpoint(run.checkpoint_dir).endswith("ckpt-6")
    # The same command again: the run has converged, so it does not train further.
    assert Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train() == 6


def test_converged_needs_patience_evaluations_without_a_better_score(tmp_path, reverse_task):
    trainer = Trainer(make_run(tmp_path / "rule", reverse_task, patience=3),
                      tf.distribute.get_strategy(), log=lambda m: None)
    history = [{"step": 500 * (i + 1), "score": s} for i, s in enumerate([10, 20, 19, 20, 18])]
    assert trainer.converged(history)              # 19, 20, 18: none beats 20
    assert not trainer.converged(history[:4])      # only 2 evaluations after the best
    history[3]["score"] = 20.5                     # a later improvement resets the count
    assert not trainer.converged(history)


def test_a_training_checkpoint_saves_each_weight_once_and_resumes_the_older_layout(
        tmp_path, reverse_task):
    """The optimizer tracks the weights too; a checkpoint holds them once (3 weight-sizes with
    Adam's two moments, not 4). A checkpoint of the older layout, with the optimizer's copy
    (sessions before 22), resumes to the same weights."""
    from tfnmt.training.trainer import seed_variables

    def trainer(name):
        return Trainer(make_run(tmp_path / name, reverse_task, train_steps=8, save_every=4),
                       tf.distribute.get_strategy(), log=lambda m: None)

    new = trainer("new")
    assert new.train(max_steps=4) == 4
    path = new.manager.latest_checkpoint
    names = [name for name, _ in tf.train.list_variables(path)]
    assert not [n for n in names if "_trainable_variables" in n]
    assert sum(n.startswith("weights/") for n in names) == len(named_weights(new.model))
    # The same state in the older layout, written over a copy of the run's step-4 checkpoint.
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    older = tf.train.Checkpoint(weights=named_weights(new.model), optimizer=new.optimizer,
                                seeds=seed_variables(new.model), rng=new.rng)
    older.save_counter.assign(new.checkpoint.save_counter)
    older.write(str(tmp_path / "old" / "checkpoints" / "ckpt-4"))
    old_names = [n for n, _ in tf.train.list_variables(str(tmp_path / "old" / "checkpoints" /
                                                           "ckpt-4"))]
    assert len([n for n in old_names if "_trainable_variables" in n]) == len(
        new.model.trainable_variables)
    sizes = [os.path.getsize(tmp_path / d / "checkpoints" / "ckpt-4.data-00000-of-00001")
             for d in ("new", "old")]
    assert sizes[0] < 0.8 * sizes[1], sizes
    resumed_new, resumed_old = trainer("new"), trainer("old")
    assert resumed_new.train() == resumed_old.train() == 8
    assert resumed_old.fingerprint() == resumed_new.fingerprint()


def test_validation_is_left_out_of_element_wise_xla_clusters(tmp_path, reverse_task):
    """--xla_elementwise clusters every graph of the process, and TensorFlow compiles a cluster
    at its second call with each input shape: the validation set's ~10 batch shapes cost the
    teacher's first two validations 50 and 143 s instead of 12 and 5 (session 23). The
    validation step's ops are marked not to be clustered."""
    run = make_run(tmp_path / "valid", reverse_task)
    run.data.valid_source, run.data.valid_target = reverse_task["test.src"], reverse_task["test.tgt"]
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    trainer.validation_loss()
    graphs = [f.graph for f in trainer._valid_step._list_all_concrete_functions()]
    assert graphs
    kinds = {"MatMul", "BatchMatMulV2", "BatchMatMulV3", "Softmax", "Mul", "AddV2"}
    ops = [op for g in graphs for op in g.get_operations() if op.type in kinds]
    assert len(ops) > 20
    unmarked = []
    for op in ops:
        try:
            if op.get_attr("_XlaCompile") is False:
                continue
        except ValueError:  # no such attribute
            pass
        unmarked.append(op.name)
    assert not unmarked, unmarked[:5]


def test_hrt_resume_after_a_validation_equals_uninterrupted(tmp_path, reverse_task):
    """Validation of HRT draws random CMLM masks; it must not move the training RNG that the
    checkpoint saved before it, or a resumed run would mask differently."""
    def hrt_run(name):
        run = make_run(tmp_path / name, reverse_task, train_steps=8, objective="hrt",
                       eval_every=4, save_every=4, eval_bleu_sentences=0)
        run.data.valid_source = reverse_task["test.src"]
        run.data.valid_target = reverse_task["test.tgt"]
        return run

    full = Trainer(hrt_run("full"), tf.distribute.get_strategy(), log=lambda m: None)
    full.train()
    Trainer(hrt_run("resumed"), tf.distribute.get_strategy(), log=lambda m: None).train(
        max_steps=4)
    resumed = Trainer(hrt_run("resumed"), tf.distribute.get_strategy(), log=lambda m: None)
    assert resumed.train() == 8
    assert resumed.fingerprint() == full.fingerprint()
    # Validation itself is repeatable: the same masks every time.
    assert full.validation_loss() == full.validation_loss()


def test_resume_with_other_settings_is_refused_unless_allowed_and_then_recorded(tmp_path,
                                                                               reverse_task):
    import dataclasses
    import json


    from tfnmt.core.errors import UserError

    run = make_run(tmp_path / "drift", reverse_task, learning_rate=3e-3)
    same = lambda **c: dataclasses.replace(run.train, **c)  # noqa: E731
    # How long and how often may change freely.
    runs.prepare(run.run_dir, run.model, run.data, same(train_steps=99, eval_every=7))
    with pytest.raises(UserError, match=r"learning_rate 0.003 -> 0.001.*seed 1234 -> 5"):
        runs.prepare(run.run_dir, run.model, run.data, same(learning_rate=1e-3, seed=5))
    with pytest.raises(UserError, match=r"teacher.run None -> 'runs/t'"):  # a teacher is a change
        runs.prepare(run.run_dir, run.model, run.data, same(teacher=TeacherConfig(run="runs/t")))
    other_data = dataclasses.replace(run.data, batch_tokens=512)
    with pytest.raises(UserError, match=r"batch_tokens 256 -> 512"):
        runs.prepare(run.run_dir, run.model, other_data, run.train)
    runs.prepare(run.run_dir, run.model, other_data, same(learning_rate=1e-3),
                 allow_config_change=True)
    saved = json.loads((tmp_path / "drift" / "config.json").read_text())
    assert saved["train"]["learning_rate"] == 1e-3 and saved["data"]["batch_tokens"] == 512
    assert saved["history"][0]["changes"] == ["batch_tokens 256 -> 512",
                                              "learning_rate 0.003 -> 0.001"]
    # The same vocabulary trained again elsewhere (other paths in its trainer spec) resumes.
    from sentencepiece import sentencepiece_model_pb2 as spm_pb

    model = spm_pb.ModelProto()
    model.ParseFromString(open(run.data.source_vocab, "rb").read())
    model.trainer_spec.model_prefix = "/elsewhere/spm"
    model.trainer_spec.input[:] = ["/elsewhere/train.src"]
    rebuilt = tmp_path / "rebuilt.model"
    rebuilt.write_bytes(model.SerializeToString())
    assert rebuilt.read_bytes() != open(run.data.source_vocab, "rb").read()
    runs.prepare(run.run_dir, run.model, dataclasses.replace(
        other_data, source_vocab=str(rebuilt), target_vocab=str(rebuilt)),
        same(learning_rate=1e-3))
    other_vocab = tmp_path / "other.model"
    model.pieces[5].score -= 1.0
    other_vocab.write_bytes(model.SerializeToString())
    with pytest.raises(UserError, match=r"is not the source vocabulary"):
        runs.prepare(run.run_dir, run.model, dataclasses.replace(
            run.data, source_vocab=str(other_vocab), target_vocab=str(other_vocab)), run.train,
            allow_config_change=True)


def test_a_second_trainer_on_a_run_directory_is_refused(tmp_path, reverse_task):
    import pytest

    from tfnmt.core.errors import UserError

    run = make_run(tmp_path / "locked", reverse_task, train_steps=2)
    first = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    first.lock()
    second = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    with pytest.raises(UserError, match=rf"being trained by pid {os.getpid()}"):
        second.train()
    first._lock_file.close()  # what the kernel does when the first process ends
    assert second.train() == 2


def test_stops_between_saves_keep_and_average_an_uninterrupted_runs_checkpoints(
        tmp_path, reverse_task):
    """A stop off the save_every schedule saves into checkpoints/resume, emptied by the next
    scheduled save: stopped at steps 4, 8 and 11, the run keeps ckpt-6/9/12 as an uninterrupted
    one does, so averaging its last three gives the same weights."""
    from tfnmt.runs.averaging import average_checkpoints
    from tfnmt.runs.packing import snapshot_run

    def trainer(name):
        return Trainer(make_run(tmp_path / name, reverse_task, train_steps=12, save_every=3,
                                keep_checkpoints=3), tf.distribute.get_strategy(),
                       log=lambda m: None)

    def kept(name):
        return [os.path.relpath(p, tmp_path / name / "checkpoints")
                for p in runs.training_checkpoints(str(tmp_path / name / "checkpoints"))]

    full = trainer("full")
    assert full.train() == 12
    assert trainer("stopped").train(max_steps=4) == 4
    assert kept("stopped") == ["ckpt-3", "resume/ckpt-4"]
    run = runs.load(str(tmp_path / "stopped"))
    assert runs.find_checkpoint(run, "latest").endswith("resume/ckpt-4")
    # A snapshot keeps the stop checkpoint where it was, and its copy resumes from it.
    snapshot_run(run, str(tmp_path / "stopped.snapshot"))
    assert kept("stopped.snapshot") == ["resume/ckpt-4"]
    assert trainer("stopped.snapshot").restore() == 4
    assert trainer("stopped").train(max_steps=4) == 8  # saves ckpt-6, then stops at 8
    assert kept("stopped") == ["ckpt-3", "ckpt-6", "resume/ckpt-8"]
    assert trainer("stopped").train(max_steps=3) == 11
    resumed = trainer("stopped")
    assert resumed.train() == 12
    assert kept("stopped") == kept("full") == ["ckpt-6", "ckpt-9", "ckpt-12"]
    assert resumed.fingerprint() == full.fingerprint()
    for name in ("full", "stopped"):
        average_checkpoints(runs.load(str(tmp_path / name)), 3)
    averaged = [runs.restore_model(runs.load(str(tmp_path / name)), "averaged")[0]
                for name in ("full", "stopped")]
    for name, value in named_weights(averaged[0]).items():
        np.testing.assert_array_equal(named_weights(averaged[1])[name].numpy(), value.numpy())


def test_a_corrupted_checkpoint_falls_back_to_an_intact_one(tmp_path, reverse_task):
    import glob

    run = make_run(tmp_path / "corrupt", reverse_task, train_steps=6, save_every=3)
    Trainer(run, tf.distribute.get_strategy(), log=lambda m: None).train()
    data = glob.glob(str(tmp_path / "corrupt" / "checkpoints" / "ckpt-6.data-*"))[0]
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    assert runs.checkpoint_problem(run.checkpoint_dir + "/ckpt-6") is not None
    assert runs.checkpoint_problem(run.checkpoint_dir + "/ckpt-3") is None
    messages = []
    resumed = Trainer(make_run(tmp_path / "corrupt", reverse_task, train_steps=6, save_every=3),
                      tf.distribute.get_strategy(), log=messages.append)
    assert resumed.restore() == 3
    assert any("ckpt-6 is unreadable" in m for m in messages)
