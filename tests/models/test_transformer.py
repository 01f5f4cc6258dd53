import numpy as np
import pytest
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.data.sequences import shift_right
from tfnmt.decoding import search
from tfnmt.models import build_model, named_weights


def make(pre_norm=True, **kwargs):
    cfg = ModelConfig.from_shape("tiny", vocab_size=40, dropout=0.0, pre_norm=pre_norm, **kwargs)
    return build_model(cfg)


SOURCE = tf.constant([[5, 6, 7, 8, 3, 0], [9, 10, 3, 0, 0, 0]])
TARGET = tf.constant([[11, 12, 13, 3, 0], [14, 15, 16, 17, 3]])


@pytest.mark.parametrize("pre_norm", [True, False])
@pytest.mark.parametrize("share", [True, False])
def test_cached_step_decoding_equals_parallel_pass(pre_norm, share):
    model = make(pre_norm, share_embeddings=share, tie_output=share)
    logits = model({"source": SOURCE, "target": TARGET}).numpy()
    decoder_input = shift_right(TARGET)
    state = model.initial_state(SOURCE, max_length=8)
    memory = search.step_memory(model, state["memory"])  # as the decode loops pass it
    cache, steps = state["cache"], []
    for i in range(TARGET.shape[1]):
        step_logits, cache = model.step(decoder_input[:, i], tf.constant(i), cache, memory)
        steps.append(step_logits.numpy())
    np.testing.assert_allclose(np.stack(steps, 1), logits, atol=1e-5)


def test_source_padding_is_ignored():
    model = make()
    logits = model({"source": SOURCE, "target": TARGET}).numpy()
    wider = tf.pad(SOURCE, [[0, 0], [0, 3]])
    logits_wider = model({"source": wider, "target": TARGET}).numpy()
    np.testing.assert_allclose(logits_wider, logits, atol=1e-5)


def test_decoder_is_causal():
    model = make()
    logits = model({"source": SOURCE, "target": TARGET}).numpy()
    changed = TARGET.numpy().copy()
    changed[:, 2] = 20  # input position 3 changes; outputs 0..2 must not
    logits2 = model({"source": SOURCE, "target": tf.constant(changed)}).numpy()
    np.testing.assert_allclose(logits2[:, :3], logits[:, :3], atol=1e-6)
    assert np.abs(logits2[:, 3:] - logits[:, 3:]).max() > 1e-4


def test_shift_right_keeps_padding():
    np.testing.assert_array_equal(shift_right(TARGET).numpy(),
                                  [[2, 11, 12, 13, 0], [2, 14, 15, 16, 17]])


def test_named_weights_cover_every_weight_once():
    model = make(share_embeddings=False, tie_output=False)
    weights = named_weights(model)
    trainable = {id(v.value) for v in model.trainable_variables}
    assert trainable <= {id(v) for v in weights.values()}
    assert len(weights) == len([v for v in model.weights if "seed_generator" not in v.path])


@pytest.mark.parametrize("shape, layers", [("base", (6, 6)), ("4-4", (4, 4)), ("12-1", (12, 1)),
                                           ("small", (3, 3))])
def test_shapes(shape, layers):
    cfg = ModelConfig.from_shape(shape, vocab_size=100)
    assert (cfg.encoder_layers, cfg.decoder_layers) == layers


def test_int8_output_table_equals_numpy_quantization():
    """runs.at_precision("int8") on a tied table: a decode step's logits are the int8 product of
    quantize_columns, as numpy computes it (row and column scales by largest magnitude), and
    stay within 2% of the largest float32 logit."""
    from tfnmt.runs import at_precision

    model = make()
    rng = np.random.default_rng(0)
    for weight in model.weights:  # peaked logits, as in a trained model
        if len(weight.shape) == 2:
            weight.assign(rng.normal(scale=weight.shape[0] ** -0.5, size=weight.shape))
    low = at_precision(model, "int8")
    assert low.int8_output and not model.int8_output
    hidden = rng.normal(size=(3, 2, 32)).astype(np.float32)
    constants = low.decoding_constants()
    assert constants["output_kernel"].dtype == tf.int8
    got = low.project(tf.constant(hidden), constants).numpy()
    table = model.target_table.embeddings.numpy().T                      # [d, V]
    column_scale = 127.0 / (np.abs(table).max(0) + 1e-7)  # Keras's epsilon
    rows = hidden.reshape(-1, 32)
    row_scale = 127.0 / (np.abs(rows).max(-1, keepdims=True) + 1e-7)
    product = (np.round(rows * row_scale).astype(np.int64)
               @ np.round(table * column_scale).astype(np.int64))
    want = (product / (row_scale * column_scale)).reshape(3, 2, -1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    exact = hidden @ table
    assert np.abs(got - exact).max() < 0.02 * np.abs(exact).max()
