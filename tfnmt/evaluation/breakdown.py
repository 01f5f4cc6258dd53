"""Where decoding time goes (Table 1 of the Hybrid paper): pseudo sentences decoded to one fixed
length with beam search; each component timed alone over the same steps and shapes.

Components: encoding (encoder + pre-computed attention memory), attention (target-to-source),
self-attention or GRU, FFN, softmax (output layer + log-softmax); "others" is the rest of the
measured total (beam expansion, top-k, reordering the cache, loop overhead).
"""

import time

import numpy as np
import tensorflow as tf

from tfnmt.data.tokenizer import EOS_ID
from tfnmt.decoding import search
from tfnmt.models.recurrent import RecurrentDecoderModel
from tfnmt.models.transformer import Transformer, visible_slots

COMPONENTS = ("encoding", "attention", "self-attention/GRU", "FFN", "softmax")


def pseudo_source(vocab_size, batch, length, seed=0):
    """Random ids (no special tokens) ending with EOS: [batch, length]."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(8, vocab_size, size=(batch, length), dtype=np.int32)
    ids[:, -1] = EOS_ID
    return tf.constant(ids)


def _tile(model, state, beam):
    """The decode loop's state: the cache for `beam` hypotheses a sentence, the memory once per
    sentence."""
    return {"cache": search.expand_cache(model, state["cache"], beam), "memory": state["memory"]}


def _varying(x, i):
    """x shifted by the loop index: an input XLA cannot hoist out of the timing loop (a
    loop-invariant one gets computed once, and the component looks nearly free)."""
    return x + tf.cast(i, x.dtype)


def component_steps(model, state, rows):
    """{component: fn(position, carry) -> carry} doing one decoding step's worth of it."""
    memory = search.step_memory(model, state["memory"])
    if isinstance(model, Transformer):
        d = model.config.d_model
        x = tf.zeros([rows, 1, d])

        def self_attention(i, carry):
            visible = visible_slots(carry["cache"]["ancestry"], i)
            caches = []
            for layer, cache in zip(model.decoder_layers, carry["cache"]["layers"]):
                y, cache = layer.self_attention_step(_varying(x, i), i, cache, visible)
                caches.append(cache)
            return {"cache": dict(carry["cache"], layers=caches),
                    "sum": carry["sum"] + tf.reduce_sum(y)}

        def attention(i, carry):
            y = [layer.cross_attention_step(_varying(x, i), kv, memory["mask"])
                 for layer, kv in zip(model.decoder_layers, memory["kv"])]
            return dict(carry, sum=carry["sum"] + tf.add_n([tf.reduce_sum(t) for t in y]))

        def ffn(i, carry):
            y = [layer.ffn_step(_varying(x, i)) for layer in model.decoder_layers]
            return dict(carry, sum=carry["sum"] + tf.add_n([tf.reduce_sum(t) for t in y]))

        def softmax(i, carry):
            y = tf.nn.log_softmax(model.logits(_varying(x, i), memory)[:, 0])
            return dict(carry, sum=carry["sum"] + tf.reduce_sum(y))

        return {"self-attention/GRU": self_attention, "attention": attention, "FFN": ffn,
                "softmax": softmax}
    if isinstance(model, RecurrentDecoderModel):
        decoder = model.decoder
        h = state["cache"]["h"]
        embedding = tf.zeros([rows, model.config.d_model])
        context = tf.zeros([rows, decoder.memory_dim])
        query = tf.zeros([rows, decoder.attention.query_dim])

        def gru(i, carry):
            u, _ = decoder.recurrent_step(carry["h"])
            h_new = decoder.gate_step(decoder.input_embedding(_varying(embedding, i)), u,
                                      context, carry["h"])
            return dict(carry, h=h_new)

        def attention(i, carry):
            c, _ = decoder.attention_step(_varying(query, i), memory)
            return dict(carry, sum=carry["sum"] + tf.reduce_sum(c))

        def softmax(i, carry):
            y = tf.nn.log_softmax(model.logits(decoder._output(_varying(h, i), context, embedding),
                                               memory))
            return dict(carry, sum=carry["sum"] + tf.reduce_sum(y))

        return {"self-attention/GRU": gru, "attention": attention, "softmax": softmax}
    raise ValueError(f"no breakdown for {type(model).__name__}")


def _timed(fn, *args, repeats):
    fn(*args)  # compile / trace
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def breakdown(model, sentences=1000, batch_size=1, source_length=20, target_length=20,
              beam_size=8, xla=True, repeats=5):
    """Seconds per component to decode `sentences` pseudo sentences (all batches alike, so one
    batch is timed `repeats` times and the median scaled by the number of batches)."""
    source = pseudo_source(model.config.vocab_size, batch_size, source_length)
    batches = -(-sentences // batch_size)
    rows = batch_size * beam_size
    jit = dict(jit_compile=xla)

    total = tf.function(lambda s: search.decode(
        model, s, target_length, beam_size, 1.0, max_length_a=0.0, max_length_b=target_length,
        min_length=target_length)["ids"], **jit)
    encode = tf.function(lambda s: model.initial_state(s, target_length), **jit)
    result = {"total": _timed(total, source, repeats=repeats),
              "encoding": _timed(encode, source, repeats=repeats)}
    state = _tile(model, model.initial_state(source, target_length), beam_size)
    carry = {"sum": tf.constant(0.0)}
    if "h" in state["cache"]:
        carry["h"] = state["cache"]["h"]
    else:
        carry["cache"] = state["cache"]
    for name, step in component_steps(model, state, rows).items():
        def loop(carry, step=step):
            return tf.while_loop(lambda i, c: i < target_length,
                                 lambda i, c: (i + 1, step(i, c)), (tf.constant(0), carry))[1]
        result[name] = _timed(tf.function(loop, **jit), carry, repeats=repeats)
    result = {k: v * batches for k, v in result.items()}
    result["others"] = result["total"] - sum(result.get(c, 0.0) for c in COMPONENTS)
    return result
