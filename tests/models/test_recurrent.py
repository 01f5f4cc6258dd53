import numpy as np
import pytest
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.data.sequences import shift_right
from tfnmt.decoding import search
from tfnmt.models import build_model, named_weights

SOURCE = tf.constant([[5, 6, 7, 8, 3, 0], [9, 10, 3, 0, 0, 0]])
TARGET = tf.constant([[11, 12, 13, 3, 0], [14, 15, 16, 17, 3]])


def make(architecture, attention="additive"):
    cfg = ModelConfig.from_shape("tiny", architecture=architecture, vocab_size=40, dropout=0.0,
                                 decoder_hidden=24, attention=attention)
    return build_model(cfg)


@pytest.mark.parametrize("architecture, attention", [
    ("hybrid", "additive"), ("hybrid", "dot"), ("hybrid", "multihead"), ("rnmt", "additive")])
def test_cached_steps_equal_teacher_forced_pass(architecture, attention):
    model = make(architecture, attention)
    logits = model({"source": SOURCE, "target": TARGET}).numpy()
    state = model.initial_state(SOURCE, max_length=8)
    memory = search.step_memory(model, state["memory"])  # as the decode loops pass it
    decoder_input, cache, steps = shift_right(TARGET), state["cache"], []
    for i in range(TARGET.shape[1]):
        step_logits, cache = model.step(decoder_input[:, i], tf.constant(i), cache, memory)
        steps.append(step_logits.numpy())
    np.testing.assert_allclose(np.stack(steps, 1), logits, atol=1e-5)


@pytest.mark.parametrize("architecture", ["hybrid", "rnmt"])
def test_source_padding_is_ignored_and_beam_search_runs_under_xla(architecture):
    model = make(architecture)
    logits = model({"source": SOURCE, "target": TARGET}).numpy()
    wider = tf.pad(SOURCE, [[0, 0], [0, 3]])
    np.testing.assert_allclose(model({"source": wider, "target": TARGET}).numpy(), logits,
                               atol=1e-5)
    run = tf.function(lambda s: search.decode(model, s, 12, 3, 1.0, 1.5, 4))
    plain = run(SOURCE)
    xla = tf.function(lambda s: search.decode(model, s, 12, 3, 1.0, 1.5, 4),
                      jit_compile=True)(SOURCE)
    np.testing.assert_array_equal(xla["ids"].numpy(), plain["ids"].numpy())


def test_hybrid_shares_the_transformer_encoder_weights_layout():
    hybrid = named_weights(make("hybrid"))
    transformer = named_weights(build_model(ModelConfig.from_shape("tiny", vocab_size=40)))
    encoder = {k for k in transformer if k.startswith(("encoder.", "source_embedding."))}
    assert encoder and encoder <= set(hybrid)
    assert not [k for k in hybrid if k.startswith("decoder_")]
