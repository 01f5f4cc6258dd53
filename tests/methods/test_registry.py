"""The method registry: every architecture is trained by exactly one method per objective, a
run finds its method and its paper's decoding settings, and mismatches are one sentence."""

import dataclasses

import pytest

from tfnmt import methods
from tfnmt.methods import imitate_nat
from tfnmt.core.config import DecodeConfig, ModelConfig, TeacherConfig, TrainConfig
from tfnmt.core.errors import UserError
from tfnmt.inference.translator import STRATEGIES, resolve_method
from tfnmt.runs import Run

ARCHITECTURES = ("transformer", "hybrid", "rnmt", "cmlm", "nart", "dat", "imitate_nat")


def run_of(architecture, objective="mle", **train):
    model = ModelConfig(architecture=architecture)
    return Run("unused", model, None, methods.train_config(model, objective=objective, **train))


def test_every_architecture_objective_pair_has_at_most_one_method():
    objectives = {o for m in methods.METHODS.values() for o in m.objectives}
    for architecture in ARCHITECTURES:
        trained = [(o, m.name) for m in methods.METHODS.values() for o in objectives
                   if architecture in m.architectures and o in m.objectives]
        assert trained, architecture
        assert len({o for o, _ in trained}) == len(trained), trained


@pytest.mark.parametrize("architecture,objective,name,strategy", [
    ("transformer", "mle", "at", "autoregressive"), ("rnmt", "mle", "at", "autoregressive"),
    ("hybrid", "mle", "hybrid", "autoregressive"), ("transformer", "hrt", "hrt", "hrt"),
    ("cmlm", "cmlm", "cmlm", "mask_predict"), ("nart", "hint", "hint_nart", "nat"),
    ("nart", "mle", "hint_nart", "nat"), ("dat", "mle", "imitate_nat", "autoregressive"),
    ("imitate_nat", "mle", "imitate_nat", "nat")])
def test_a_run_finds_its_method_and_strategy(architecture, objective, name, strategy):
    run = run_of(architecture, objective)
    method = methods.of_run(run.model, run.train)
    assert method.name == name
    resolved = resolve_method(DecodeConfig(method="auto", beam_size=None, length_penalty=None,
                                           length_halfwidth=None, nat_selection=None), run)
    assert resolved.method == strategy in STRATEGIES
    for key, value in method.decode_defaults(architecture).items():
        if key != "method":
            assert getattr(resolved, key) == value


def test_the_papers_decoding_settings():
    """Hybrid paper beam 12 / lp 1.0 (and its RNMT baseline), HRT b_at = 5, imitate-NAT LPD
    delta T = 3, the hint-based NART's candidate of highest (total) probability; a strategy
    other than the method's own gets the generic settings."""
    unset = DecodeConfig(method="auto", beam_size=None, length_penalty=None, length_halfwidth=None,
                         nat_selection=None)
    assert (resolve_method(unset, run_of("hybrid")).beam_size,
            resolve_method(unset, run_of("hybrid")).length_penalty) == (12, 1.0)
    assert resolve_method(unset, run_of("rnmt")).beam_size == 12
    assert resolve_method(unset, run_of("transformer", "hrt")).beam_size == 5
    assert resolve_method(unset, run_of("imitate_nat")).length_halfwidth == 3
    assert resolve_method(unset, run_of("nart", "hint")).length_halfwidth == 0
    assert resolve_method(unset, run_of("nart", "hint")).nat_selection == "total"
    assert resolve_method(unset, run_of("imitate_nat")).nat_selection == "normalized"
    other = DecodeConfig(method="autoregressive", beam_size=None, length_penalty=None,
                         length_halfwidth=None)
    assert resolve_method(other, run_of("transformer", "hrt")).beam_size == 4


@pytest.mark.parametrize("architecture,objective,message", [
    ("transformer", "cmlm", "objective cmlm needs --architecture=cmlm, got transformer."),
    ("hybrid", "hint", "objective hint needs --architecture=nart, got hybrid."),
    ("transformer", "nonsense", "objective must be one of cmlm, hint, hrt, mle, got "
                                "'nonsense'.")])
def test_a_mismatch_is_one_sentence(architecture, objective, message):
    with pytest.raises(UserError) as error:
        run_of(architecture, objective)  # the config already: before any model is built
    assert str(error.value) == message
    with pytest.raises(UserError) as error:
        methods.of_run(ModelConfig(architecture=architecture), TrainConfig(objective=objective))
    assert str(error.value) == message


def test_a_run_holds_its_own_methods_settings_only():
    flat = dict(p_raw=0.5, action_lambda=0.01, il_lambda=0.2, hint_mu=2.0, kd_lambda=0.3)
    at, hrt = run_of("transformer", **flat), run_of("transformer", "hrt", **flat)
    assert at.train.settings is None and at.train.teacher is None  # no teacher run: no section
    assert (hrt.train.settings.p_raw, hrt.train.settings.hrt_chunk) == (0.5, 2)  # given, default
    assert run_of("dat", **flat).train.settings == imitate_nat.DemonstratorSettings(0.01)
    assert run_of("imitate_nat", **flat).train.settings == imitate_nat.LearnerSettings(0.2)
    assert run_of("nart", "hint", **flat).train.settings.hint_mu == 2.0
    assert run_of("nart", **flat).train.settings is None  # the no-hint ablation reads none
    taught = run_of("hybrid", teacher_run="runs/t", **flat)
    assert taught.train.teacher == TeacherConfig(run="runs/t", kd_lambda=0.3)
    # Sections do not go through the flat names twice: nesting nested values changes nothing.
    values = dataclasses.asdict(hrt.train)
    assert methods.nest_train(hrt.model, values) == values


class _Pieces:
    """A tokenizer stub: every reserved piece has its own id, <unk> is 1."""

    def piece_id(self, piece):
        return {"<unk>": 1, "<mask>": 4, "<bos_2>": 5, "<bos_3>": 6}.get(piece, 1)


@pytest.mark.parametrize("architecture,objective,given,read", [
    ("cmlm", "cmlm", dict(length_weight=0.5), lambda o: o.length_weight),
    ("transformer", "hrt", dict(hrt_chunk=3, curriculum_lambda=2.0, p_raw=0.4),
     lambda o: (o.k, o.bos_k_id, o.curriculum_lambda, o.p_raw)),
    ("dat", "mle", dict(action_lambda=0.01, action_alpha=0.5),
     lambda o: (o.action_lambda, o.alpha))])
def test_an_objective_is_built_with_its_runs_settings(architecture, objective, given, read):
    run = run_of(architecture, objective, label_smoothing=0.0, **given)
    ctx = methods.Context(run, _Pieces(), step=None, rng=None, teacher=None, log=print)
    built = methods.of_run(run.model, run.train).build_objective(ctx)
    want = {"cmlm": 0.5, "hrt": (3, 6, 2.0, 0.4), "mle": (0.01, 0.5)}[objective]
    assert read(built) == want and built.label_smoothing == 0.0
