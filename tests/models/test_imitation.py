"""imitate-NAT: the imitation module, the action regularisation and its moving average under
tf.distribute, SoftCopy, the imitation loss, length-parallel decoding, training and export."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig, ModelConfig
from tfnmt.data.sequences import shift_right
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.decoding.parallel import nat_translate
from tfnmt.inference.translator import load_rescorer, resolve_method
from tfnmt.layers.imitation import ImitationModule
from tfnmt.methods.imitate_nat import action_regularisation, imitation_cross_entropy, redistributed
from tfnmt.models import build_model
from tfnmt.models.imitation import soft_copy_weights
from tfnmt.serving.saved_model import export_run
from tfnmt.training.trainer import Trainer

from tests.conftest import make_run
from tests.serving.test_saved_model import assert_export_matches
from tests.models.test_nat import FakeAT
from tests.training.test_trainer import one_batch, step


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_imitation_module_equals_numpy():
    module = ImitationModule(6, num_actions=5, hidden=7)
    module.build((None, None, 6))
    o = np.random.default_rng(0).normal(size=(2, 3, 6)).astype(np.float32)
    out, pi = module(tf.constant(o))
    w1, b1 = module.hidden.kernel.numpy(), module.hidden.bias.numpy()
    w2, b2 = module.policy.kernel.numpy(), module.policy.bias.numpy()
    want_pi = softmax(np.maximum(o @ w1 + b1, 0) @ w2 + b2)
    np.testing.assert_allclose(pi.numpy(), want_pi, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.numpy(), o + want_pi @ module.actions.numpy(), rtol=1e-5,
                               atol=1e-6)


def test_redistribution_and_action_kl_by_hand():
    pi = np.array([0.5, 0.3, 0.2], np.float32)
    c = np.array([0.5, 0.25, 0.25], np.float32)
    # pi^2 / c = [0.5, 0.36, 0.16], which sums to 1.02.
    want = np.array([0.5, 0.36, 0.16]) / 1.02
    np.testing.assert_allclose(redistributed(tf.constant(pi), tf.constant(c)).numpy(), want,
                               rtol=1e-5)
    kl = action_regularisation(tf.constant([[pi, pi]]), tf.constant(c),
                               tf.constant([[True, False]]))
    np.testing.assert_allclose(float(kl), np.sum(want * np.log(want / pi)), rtol=1e-5)


def test_soft_copy_weights_equal_numpy_sum_to_one_and_train_tau():
    mask = tf.constant([[True, True, True, False], [True, True, True, True]])
    log_tau = tf.Variable(np.log(0.7), dtype=tf.float32)
    with tf.GradientTape() as tape:
        weights = soft_copy_weights(mask, 5, log_tau)
        loss = tf.reduce_sum(weights[:, :, 0] * tf.constant([[1.0] * 5, [2.0] * 5]))
    got = weights.numpy()
    for b, m in enumerate([3, 4]):
        for j in range(5):
            want = softmax(np.array([-abs(j - i) / 0.7 for i in range(m)]))
            np.testing.assert_allclose(got[b, j, :m], want, rtol=1e-5)
            assert got[b, j, m:].sum() < 1e-6
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-6)
    assert abs(float(tape.gradient(loss, log_tau))) > 1e-4


def test_imitation_cross_entropy_equals_numpy():
    rng = np.random.default_rng(1)
    teacher = [softmax(rng.normal(size=(2, 3, 4))) for _ in range(2)]
    learner = [softmax(rng.normal(size=(2, 3, 4))) for _ in range(2)]
    real = np.array([[True, True, False], [True, False, False]])
    got = imitation_cross_entropy([tf.constant(t, tf.float32) for t in teacher],
                                  [tf.constant(s, tf.float32) for s in learner],
                                  tf.constant(real))
    want = sum(-(t * np.log(s)).sum(-1)[real].sum() for t, s in zip(teacher, learner))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # A bfloat16 demonstrator (beside a mixed-bfloat16 learner): its policies as they were
    # rounded, the sum in float32.
    rounded = [tf.constant(t, tf.bfloat16) for t in teacher]
    got = imitation_cross_entropy(rounded, [tf.constant(s, tf.float32) for s in learner],
                                  tf.constant(real))
    want = sum(-(tf.cast(t, tf.float32).numpy() * np.log(s)).sum(-1)[real].sum()
               for t, s in zip(rounded, learner))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def dat_config(**kwargs):
    return ModelConfig.from_shape("tiny", architecture="dat", dropout=0.0, num_actions=8,
                                  **kwargs)


def test_action_average_is_one_agreed_update_per_step_and_is_checkpointed(tmp_path,
                                                                          reverse_task,
                                                                          two_replicas):
    run = make_run(tmp_path / "dat", reverse_task, model=dat_config(), action_alpha=0.9)
    trainer = Trainer(run, two_replicas, log=lambda m: None)
    batch = one_batch(run, 16)
    model = trainer.model
    c0 = model.action_average.numpy()
    # The expected update from the whole global batch, before the step changes the weights.
    encoded, mask = model.encode(batch["source"])
    _, internals = model.decode(shift_right(batch["target"]), encoded, mask,
                                return_internals=True)
    real = (batch["target"] != PAD_ID).numpy()[:, :, None]
    usage = np.stack([((pi.numpy() * real).sum(1) / real.sum(1)).mean(0)
                      for pi in internals["policy"]])
    step(trainer, tf.data.Dataset.from_tensors(batch).repeat(), 1)
    values = [v.numpy() for v in model.action_average.value.values]  # one per replica
    assert len(values) == 2
    np.testing.assert_array_equal(values[0], values[1])
    np.testing.assert_allclose(values[0], 0.9 * c0 + 0.1 * usage, rtol=1e-4)
    trainer.save()
    restored = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    restored.restore()
    np.testing.assert_allclose(restored.model.action_average.numpy(), values[0], rtol=1e-6)


@pytest.fixture(scope="module")
def imitation_runs(tmp_path_factory, reverse_task):
    base = tmp_path_factory.mktemp("imitation")
    dat = make_run(base / "dat", reverse_task, model=dat_config(), train_steps=60,
                   learning_rate=5e-3, xla=True)
    Trainer(dat, tf.distribute.get_strategy(), log=lambda m: None).train()
    learner_config = dataclasses.replace(dat_config(), architecture="imitate_nat",
                                         max_length=16)
    learner = make_run(base / "nat", reverse_task, model=learner_config, train_steps=40,
                       learning_rate=5e-3, xla=True, teacher_run=dat.run_dir,
                       teacher_checkpoint="latest", init_from=dat.run_dir, il_lambda=0.1)
    trainer = Trainer(learner, tf.distribute.get_strategy(), log=lambda m: None)
    outputs = []
    train_step = trainer._make_train_step()
    trainer._train_step = lambda iterator: outputs.append(train_step(iterator)) or outputs[-1]
    trainer.train()
    return dat, learner, outputs


def test_learner_starts_from_the_dat_and_imitates_it(imitation_runs, tmp_path, reverse_task):
    from tfnmt.models import named_weights

    dat, learner, outputs = imitation_runs
    assert float(outputs[-1]["imitation"]) < float(outputs[0]["imitation"])
    assert float(outputs[-1]["length_nll"]) < float(outputs[0]["length_nll"])
    # Initialisation: every weight the two share comes from the DAT; the rest starts fresh.
    fresh = Trainer(make_run(tmp_path / "init", reverse_task, model=learner.model),
                    tf.distribute.get_strategy(), log=lambda m: None)
    before = {k: v.numpy() for k, v in named_weights(fresh.model).items()}
    fresh.initialise_from(dat.run_dir)
    dat_weights = {k: v.numpy() for k, v in
                   named_weights(runs.restore_model(dat, "best")[0]).items()}
    for name, value in named_weights(fresh.model).items():
        if name in dat_weights:
            np.testing.assert_array_equal(value.numpy(), dat_weights[name], err_msg=name)
        else:
            assert name.startswith(("length.", "copy_log_tau")), name
            np.testing.assert_array_equal(value.numpy(), before[name])


def test_uniform_copy_learner_without_imitation_trains(imitation_runs, tmp_path, reverse_task):
    dat, learner, _ = imitation_runs
    config = dataclasses.replace(
        learner.model, imitation=dataclasses.replace(learner.model.imitation, copy="uniform"))
    run = make_run(tmp_path / "uniform", reverse_task, model=config, train_steps=30,
                   learning_rate=5e-3, init_from=dat.run_dir)
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    batch = one_batch(run, 16)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    outs = [trainer._train_step(iterator) for _ in range(30)]
    assert float(outs[-1]["nll"]) < 0.8 * float(outs[0]["nll"])
    assert not any("copy_log_tau" in v.path for v in trainer.model.weights)


def test_learner_without_imitation_module_is_the_learner_whose_modules_add_nothing(
        imitation_runs, tmp_path, reverse_task):
    """num_actions 0, the paper's competitor "without imitation module": its passes equal a
    learner's with the same weights whose action tables are zero; started from the DAT it
    takes every weight but the modules'; it trains; it cannot imitate, and a DAT needs its
    modules."""
    from tfnmt.core.errors import UserError
    from tfnmt.models import named_weights

    dat, learner, _ = imitation_runs
    plain_config = dataclasses.replace(
        learner.model, imitation=dataclasses.replace(learner.model.imitation, num_actions=0))
    plain, modules = build_model(plain_config), runs.restore_model(learner, "latest")[0]
    weights, theirs = named_weights(plain), named_weights(modules)
    assert set(weights) < set(theirs) and all(
        name.startswith("imitation_") for name in set(theirs) - set(weights))
    for name, value in weights.items():
        value.assign(theirs[name])
    for module in modules.imitation:
        module.actions.assign(tf.zeros_like(module.actions))
    source = tf.constant([[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID, PAD_ID, PAD_ID]])
    outputs = []
    for model in (plain, modules):
        encoded, mask = model.encode(source)
        logits, internals = model.nat_decode(source, encoded, mask, tf.constant([4, 3]), 5,
                                             return_internals=True)
        outputs.append(logits.numpy())
    assert internals["policy"][0] is not None
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)

    run = make_run(tmp_path / "plain", reverse_task, model=plain_config, train_steps=30,
                   learning_rate=5e-3, init_from=dat.run_dir)
    trainer = Trainer(run, tf.distribute.get_strategy(), log=lambda m: None)
    trainer.initialise_from(dat.run_dir)
    dat_weights = named_weights(runs.restore_model(dat, "best")[0])
    for name, value in named_weights(trainer.model).items():
        if not name.startswith(("length.", "copy_log_tau")):
            np.testing.assert_array_equal(value.numpy(), dat_weights[name].numpy(),
                                          err_msg=name)
    iterator = iter(tf.data.Dataset.from_tensors(one_batch(run, 16)).repeat())
    outs = [trainer._train_step(iterator) for _ in range(30)]
    assert float(outs[-1]["nll"]) < 0.8 * float(outs[0]["nll"]) and "imitation" not in outs[0]
    with pytest.raises(UserError, match="imitation needs a DAT demonstrator"):
        Trainer(make_run(tmp_path / "plain_imitating", reverse_task, model=plain_config,
                         teacher_run=dat.run_dir, teacher_checkpoint="latest"),
                tf.distribute.get_strategy(), log=lambda m: None)
    with pytest.raises(UserError, match="num_actions must be at least 1 for dat"):
        ModelConfig.from_shape("tiny", architecture="dat", num_actions=0).validate()


def test_length_parallel_decoding_centres_on_the_classifier_and_keeps_the_dats_best():
    model = build_model(dataclasses.replace(dat_config(), architecture="imitate_nat",
                                            vocab_size=24, max_length=16))
    bias = np.zeros(17, np.float32)
    bias[6] = 50.0  # the classifier says 6
    model.length_predictor.bias.assign(bias)
    source = tf.constant([[5, 6, 7, EOS_ID]])
    encoded, mask = model.encode(source)
    assert int(model.predicted_lengths(source, encoded, mask)[0]) == 6
    alone = nat_translate(model, source, 16)
    assert int(alone["lengths"][0, 0]) == 6
    chosen = nat_translate(model, source, 16, halfwidth=3, rescorer=FakeAT(vocab=24, word=7, eos_at=2))
    assert int(chosen["lengths"][0, 0]) == 3  # 3 .. 9 decoded; the DAT likes 3 best


def test_exported_learner_with_lpd_equals_in_process(imitation_runs, reverse_task, tmp_path):
    dat, learner, _ = imitation_runs
    config = DecodeConfig(method="auto", length_halfwidth=3, rescore_run=dat.run_dir,
                          rescore_checkpoint="latest")
    version_dir = export_run(learner.run_dir, str(tmp_path / "nat"), "latest", config)
    texts = open(reverse_task["test.src"], encoding="utf-8").read().splitlines()[:6]
    resolved = resolve_method(config, learner)
    assert_export_matches(version_dir, learner, resolved, texts,
                          load_rescorer(resolved, learner), names=("translate",))


def test_analyze_action_histogram(imitation_runs, reverse_task, tmp_path):
    import json

    from tfnmt.evaluation.analysis import action_usage

    from tests.conftest import run_modules

    dat, learner, _ = imitation_runs
    png, result = tmp_path / "actions.png", tmp_path / "actions.json"
    data = (f"--source={reverse_task['test.src']}", f"--target={reverse_task['test.tgt']}")
    out, bad = run_modules(
        ("tfnmt.analyze", "--mode=actions", f"--runs=dat={dat.run_dir}@latest", *data,
         f"--output={png}", f"--result={result}"),
        ("tfnmt.analyze", "--mode=actions", f"--runs=x={learner.run_dir}@latest", *data,
         f"--output={tmp_path / 'bad.png'}"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    counts = action_usage(dat, runs.restore_model(dat, "latest")[0], reverse_task["test.src"],
                          reverse_task["test.tgt"])
    # Every real target position of every layer (of the pairs the pipeline keeps) makes one
    # decision.
    from tfnmt.data.pipeline import make_dataset

    tokens = sum(int(tf.reduce_sum(tf.cast(b["target"] != PAD_ID, tf.int32))) for b in
                 make_dataset(reverse_task["test.src"], reverse_task["test.tgt"], dat.source_vocab,
                              dat.target_vocab, dat.data, training=False))
    assert tokens > 1000 and counts.sum() == tokens * dat.model.decoder_layers
    recorded = json.loads(result.read_text())["values"]["runs"]["dat"]
    assert recorded["categories_used"] == int((counts > 0).sum())
    assert bad.returncode == 1 and "is not a DAT" in bad.stderr


def test_analyze_imitation_scales_against_a_direct_computation(imitation_runs, reverse_task,
                                                              tmp_path):
    """--mode=imitation: the imitation cross-entropy and its KL against numpy over both models'
    policies; the gradient of lambda_2 L_IL against the difference of the training loss's
    gradients with and without it (two more tapes)."""
    import json

    from tfnmt.data.pipeline import make_dataset
    from tfnmt.data.sequences import lengths_of
    from tfnmt.methods.imitate_nat import ImitationLearning

    from tests.conftest import run_modules

    dat, learner, _ = imitation_runs
    data = (f"--source={reverse_task['test.src']}", f"--target={reverse_task['test.tgt']}")
    result = tmp_path / "imitation.json"
    out, bad = run_modules(
        ("tfnmt.analyze", "--mode=imitation", f"--runs=nat={learner.run_dir}@latest",
         f"--teacher_run={dat.run_dir}@latest", *data, "--batches=2", f"--result={result}"),
        ("tfnmt.analyze", "--mode=imitation", f"--runs=x={dat.run_dir}@latest",
         f"--teacher_run={dat.run_dir}@latest", *data))
    assert out.returncode == 0, out.stderr[-2000:]
    assert bad.returncode == 1 and "is not an imitate-NAT learner" in bad.stderr
    values = json.loads(result.read_text())["values"]["runs"]["nat"]

    demonstrator = runs.restore_model(dat, "latest")[0]
    model = build_model(learner.model)  # as training builds it: no decoding layout kept
    runs.restore_shared_weights(model, learner.run_dir, "latest")
    settings = learner.train.settings
    batches = list(make_dataset(reverse_task["test.src"], reverse_task["test.tgt"],
                                learner.source_vocab, learner.target_vocab, learner.data,
                                training=False).take(2))
    cross_entropy = entropy = tokens = 0.0
    for batch in batches:
        target = batch["target"]
        real = (target != PAD_ID).numpy()
        tokens += real.sum()
        encoded, mask = model.encode(batch["source"])
        _, mine = model.nat_decode(batch["source"], encoded, mask, lengths_of(target),
                                   tf.shape(target)[1], False, return_internals=True)
        encoded, mask = demonstrator.encode(batch["source"])
        _, theirs = demonstrator.decode(shift_right(target), encoded, mask,
                                        return_internals=True)
        for p, q in zip(theirs["policy"], mine["policy"]):
            p, q = p.numpy().astype(np.float64), q.numpy().astype(np.float64)
            cross_entropy -= (p * np.log(q)).sum(-1)[real].sum()
            entropy -= (p * np.log(p)).sum(-1)[real].sum()
    np.testing.assert_allclose(values["imitation_per_token"], cross_entropy / tokens, rtol=1e-3)
    np.testing.assert_allclose(values["imitation_kl_per_token"],
                               (cross_entropy - entropy) / tokens, rtol=1e-2, atol=2e-4)
    assert values["tokens"] == tokens and values["il_lambda"] == settings.il_lambda == 0.1

    grads = []
    for il_lambda in (0.0, settings.il_lambda):
        objective = ImitationLearning(demonstrator, il_lambda, settings.length_weight,
                                      learner.train.label_smoothing)
        total = 0.0
        for batch in batches:
            with tf.GradientTape() as tape:
                loss = objective(model, batch, training=False)["loss"]
            total = total + np.concatenate([
                np.zeros(v.shape.num_elements()) if g is None
                else tf.convert_to_tensor(g).numpy().ravel()
                for v, g in zip(model.trainable_variables,
                                tape.gradient(loss, model.trainable_variables))])
        grads.append(total / tokens)
    without, imitation = grads[0], grads[1] - grads[0]
    np.testing.assert_allclose(values["gradient_norm_without_imitation"],
                               np.linalg.norm(without), rtol=1e-4)
    np.testing.assert_allclose(values["gradient_norm_of_imitation"], np.linalg.norm(imitation),
                               rtol=1e-3)
    np.testing.assert_allclose(values["gradient_cosine"], without @ imitation / (
        np.linalg.norm(without) * np.linalg.norm(imitation)), atol=2e-3)
    assert 0.0 < values["gradient_ratio"] and values["imitation_kl_per_token"] > 0.0


def test_each_nat_decoder_has_its_own_self_attention_default(monkeypatch):
    from tfnmt.models import nat

    assert ModelConfig(architecture="nart").nat.attend_self is False
    assert ModelConfig().nat is None  # a Transformer has no NAT section
    assert ModelConfig(architecture="imitate_nat").nat.attend_self is True
    assert ModelConfig.from_shape("tiny", architecture="imitate_nat",
                                  nat_attend_self=False).nat.attend_self is False
    # The learner's decoder builds its self-attention mask with the diagonal.
    seen = []
    original = nat.nat_self_mask
    monkeypatch.setattr(nat, "nat_self_mask",
                        lambda mask, attend_self: seen.append(attend_self) or original(mask,
                                                                                      attend_self))
    model = build_model(ModelConfig.from_shape("tiny", architecture="imitate_nat", vocab_size=20,
                                               dropout=0.0, max_length=16))
    source = tf.constant([[5, 6, 7, 3]])
    encoded, mask = model.encode(source)
    model.nat_decode(source, encoded, mask, tf.constant([3]), 4)
    assert seen == [True]
