"""The method registry: every architecture is trained by exactly one method per objective, a
run finds its method and its paper's decoding settings, and mismatches are one sentence."""

import pytest

from tfnmt import methods
from tfnmt.core.config import DecodeConfig, ModelConfig, TrainConfig
from tfnmt.core.errors import UserError
from tfnmt.inference.translator import STRATEGIES, resolve_method
from tfnmt.runs import Run

ARCHITECTURES = ("transformer", "hybrid", "rnmt", "cmlm", "nart", "dat", "imitate_nat")


def run_of(architecture, objective="mle"):
    return Run("unused", ModelConfig(architecture=architecture), None,
               TrainConfig(objective=objective))


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
                                           length_halfwidth=None), run)
    assert resolved.method == strategy in STRATEGIES
    for key, value in method.decode_defaults(architecture).items():
        if key != "method":
            assert getattr(resolved, key) == value


def test_the_papers_decoding_settings():
    """Hybrid paper beam 12 / lp 1.0 (and its RNMT baseline), HRT b_at = 5, imitate-NAT LPD
    delta T = 3; a strategy other than the method's own gets the generic settings."""
    unset = DecodeConfig(method="auto", beam_size=None, length_penalty=None, length_halfwidth=None)
    assert (resolve_method(unset, run_of("hybrid")).beam_size,
            resolve_method(unset, run_of("hybrid")).length_penalty) == (12, 1.0)
    assert resolve_method(unset, run_of("rnmt")).beam_size == 12
    assert resolve_method(unset, run_of("transformer", "hrt")).beam_size == 5
    assert resolve_method(unset, run_of("imitate_nat")).length_halfwidth == 3
    assert resolve_method(unset, run_of("nart", "hint")).length_halfwidth == 0
    other = DecodeConfig(method="autoregressive", beam_size=None, length_penalty=None,
                         length_halfwidth=None)
    assert resolve_method(other, run_of("transformer", "hrt")).beam_size == 4


@pytest.mark.parametrize("architecture,objective,message", [
    ("transformer", "cmlm", "objective cmlm needs --architecture=cmlm, got transformer."),
    ("hybrid", "hint", "objective hint needs --architecture=nart, got hybrid."),
    ("transformer", "nonsense", "objective must be one of cmlm, hint, hrt, mle, got "
                                "'nonsense'.")])
def test_a_mismatch_is_one_sentence(architecture, objective, message):
    run = run_of(architecture, objective)
    with pytest.raises(UserError) as error:
        methods.of_run(run.model, run.train)
    assert str(error.value) == message


def test_settings_a_method_never_reads_are_unused():
    at, hrt = run_of("transformer"), run_of("transformer", "hrt")
    assert methods.unused_setting("p_raw", at.model, at.train)
    assert not methods.unused_setting("p_raw", hrt.model, hrt.train)
    assert not methods.unused_setting("learning_rate", at.model, at.train)  # everyone's
    dat, learner = run_of("dat"), run_of("imitate_nat")
    assert not methods.unused_setting("action_lambda", dat.model, dat.train)
    assert methods.unused_setting("action_lambda", learner.model, learner.train)
    assert methods.unused_setting("kd_lambda", at.model, at.train)
    with_teacher = TrainConfig(teacher_run="teacher")
    assert not methods.unused_setting("kd_lambda", at.model, with_teacher)
