"""Every Keras layer in tfnmt/layers round-trips through get_config/from_config.

The layers are discovered by importing every module of tfnmt.layers, so a new layer fails here
until it has an entry in EXAMPLES (and a get_config returning its constructor arguments).
"""

import importlib
import inspect
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnmt.layers
from tfnmt.layers.attention import MultiHeadAttention, PositionalAttention
from tfnmt.layers.embedding import Embedder, token_embedding
from tfnmt.layers.feed_forward import FeedForward
from tfnmt.layers.gru_decoder import GRUDecoder
from tfnmt.layers.imitation import ImitationModule
from tfnmt.layers.nat_decoder import NATDecoderLayer, nat_self_mask
from tfnmt.layers.rnn_attention import AdditiveAttention, DotAttention, MultiHeadRNNAttention
from tfnmt.layers.rnn_encoder import BiGRUEncoder
from tfnmt.layers.transformer_decoder import TransformerDecoderLayer
from tfnmt.layers.transformer_encoder import TransformerEncoder, _EncoderLayer


def layer_classes():
    """Every keras.layers.Layer subclass defined (not just imported) in a tfnmt.layers module."""
    found = []
    for info in pkgutil.iter_modules(tfnmt.layers.__path__, "tfnmt.layers."):
        module = importlib.import_module(info.name)
        found += [obj for _, obj in inspect.getmembers(module, inspect.isclass)
                  if issubclass(obj, keras.layers.Layer) and obj.__module__ == module.__name__]
    return sorted(found, key=lambda cls: (cls.__module__, cls.__name__))


# Tiny inputs: batch 2, source length 5 (the second sentence has 2 padding positions),
# target length 4, model width 8.
RNG = np.random.default_rng(0)


def const(*shape):
    return tf.constant(RNG.normal(size=shape), tf.float32)


SOURCE_MASK = tf.constant([[True] * 5, [True] * 3 + [False] * 2])
TARGET_MASK = tf.constant([[True] * 4, [True] * 2 + [False] * 2])
CAUSAL = tf.linalg.band_part(tf.ones([4, 4]), -1, 0)[None] > 0
MEMORY, X, POSITIONS = const(2, 5, 8), const(2, 4, 8), const(1, 4, 8)
GRU_INPUT, GRU_EMBEDDINGS = const(2, 5, 6), const(2, 4, 3)
IDS = tf.constant([[3, 7, 1, 0], [9, 2, 0, 0]], tf.int32)


# The example calls run twice on the rebuilt layer (to build it, then with the copied
# weights): explicit builds only when not built yet.
def rnn_attention_call(query):
    def run(layer):
        if not layer.built:
            layer.build(MEMORY.shape)
        return layer.attend(query, layer.project_memory(MEMORY, SOURCE_MASK))
    return run


def transformer_decoder_call(layer):
    if not layer.built:
        layer.build(X.shape)
    memory_kv = layer.project_memory(MEMORY)
    parallel = layer(X, memory_kv, SOURCE_MASK[:, None, :], CAUSAL, return_attention=True)
    cache = {"k": tf.zeros([2, 2, 4, 4]), "v": tf.zeros([2, 2, 4, 4])}
    visible = tf.constant([[[True, False, False, False]]] * 2)
    step, cache = layer.step(X[:, :1], 0, cache, memory_kv, SOURCE_MASK[:, None, :], visible)
    return parallel, step, cache


def nat_decoder_call(layer):
    if not layer.built:
        layer.build(X.shape)
    return layer(X, POSITIONS, layer.project_memory(MEMORY), SOURCE_MASK[:, None, :],
                 nat_self_mask(TARGET_MASK, attend_self=False))


def gru_decoder_call(layer):
    if not layer.built:
        layer.build((None, None, 3), MEMORY.shape)
    h0, state = layer.initial_state(MEMORY, SOURCE_MASK)
    return (layer(GRU_EMBEDDINGS, h0, state, return_attention=True),
            layer.step(GRU_EMBEDDINGS[:, 0], h0, state))


def embedder_kwargs():
    table = token_embedding(11, 8, "table")
    table.build((None, None))  # as EncoderDecoder.build does, before the embedders run
    return {"token_embedding": table, "d_model": 16, "dropout": 0.25, "with_positions": True}


# class -> (constructor kwargs (small, non-default where possible) or a function returning
# them, function(layer) -> outputs: builds the layer and runs it in inference mode).
EXAMPLES = {
    MultiHeadAttention: (
        {"d_model": 8, "num_heads": 2, "self_attention": False, "dropout": 0.25,
         "project_queries": True},
        lambda layer: layer(X, memory=MEMORY, attention_mask=SOURCE_MASK[:, None, :])),
    PositionalAttention: (
        {"d_model": 8, "num_heads": 4, "dropout": 0.25},
        lambda layer: layer(X, POSITIONS, nat_self_mask(TARGET_MASK))),
    Embedder: (
        embedder_kwargs,
        lambda layer: layer(IDS, start_index=2)),
    FeedForward: (
        {"d_model": 8, "ffn_dim": 12, "dropout": 0.25, "activation": "gelu"},
        lambda layer: layer(X)),
    GRUDecoder: (
        {"hidden_size": 6, "output_size": 5, "attention": "multihead", "attention_units": 7,
         "d_model": 8, "num_heads": 2, "dropout": 0.25},
        gru_decoder_call),
    ImitationModule: (
        {"d_model": 8, "num_actions": 5, "hidden": 6},
        lambda layer: layer(X)),
    NATDecoderLayer: (
        {"d_model": 8, "num_heads": 2, "ffn_dim": 12, "dropout": 0.25, "attention_dropout": 0.125,
         "pre_norm": False},
        nat_decoder_call),
    AdditiveAttention: ({"units": 6}, rnn_attention_call(const(2, 3, 6))),
    DotAttention: ({"units": 6}, rnn_attention_call(const(2, 3, 6))),
    MultiHeadRNNAttention: ({"d_model": 8, "num_heads": 4}, rnn_attention_call(const(2, 3, 8))),
    BiGRUEncoder: (
        {"num_layers": 2, "d_model": 6, "dropout": 0.25},
        lambda layer: layer(GRU_INPUT, SOURCE_MASK)),
    TransformerDecoderLayer: (
        {"d_model": 8, "num_heads": 2, "ffn_dim": 12, "dropout": 0.25, "attention_dropout": 0.125,
         "pre_norm": False},
        transformer_decoder_call),
    TransformerEncoder: (
        {"num_layers": 2, "d_model": 8, "num_heads": 2, "ffn_dim": 12, "dropout": 0.25,
         "attention_dropout": 0.125, "pre_norm": False},
        lambda layer: layer(MEMORY, SOURCE_MASK)),
    _EncoderLayer: (
        {"attention_dropout": 0.125, "intermediate_dim": 12, "num_heads": 2, "dropout": 0.25},
        lambda layer: layer(MEMORY, padding_mask=SOURCE_MASK)),
}


def numpy_leaves(outputs):
    return [np.asarray(leaf) for leaf in tf.nest.flatten(outputs)]


@pytest.mark.parametrize("cls", layer_classes(),
                         ids=lambda cls: f"{cls.__module__.split('.')[-1]}.{cls.__name__}")
def test_from_config_rebuilds_an_equivalent_layer(cls):
    if cls not in EXAMPLES:
        pytest.fail(f"{cls.__module__}.{cls.__name__} has no entry in EXAMPLES "
                    "(constructor arguments and an example call)")
    kwargs, run = EXAMPLES[cls]
    kwargs = kwargs() if callable(kwargs) else kwargs
    # Keras 3 would otherwise make a config up from simple constructor arguments.
    assert cls.get_config is not keras.layers.Layer.get_config, "no get_config"
    layer = cls(**kwargs, name="original")
    outputs = numpy_leaves(run(layer))
    config = layer.get_config()
    arguments = [name for name, p in inspect.signature(cls.__init__).parameters.items()
                 if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    assert set(arguments) <= set(config), f"missing {set(arguments) - set(config)}"

    clone = cls.from_config(config)
    assert clone.get_config() == config
    run(clone)  # builds it
    assert [w.path for w in clone.weights] == [w.path for w in layer.weights]
    clone.set_weights(layer.get_weights())
    clone_outputs = numpy_leaves(run(clone))
    assert len(clone_outputs) == len(outputs)
    for got, expected in zip(clone_outputs, outputs):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
