"""What a batch-1 decode call costs before its first step (not part of the suite; run on an
idle CPU): python tests/perf/call_fixed_cost.py

A random small Transformer (d 256, 3-3, its decoding table kept as a restored run keeps it)
decodes one 16-token source to 1, 16 and 64 forced steps under XLA, greedy and beam 4, best of
60 calls each: the 1-step call is the fixed cost plus one step, (64 − 16) steps give the
marginal step. An empty XLA call is the floor. XLA_FLAGS in the environment apply."""

import numpy as np
import tensorflow as tf
from batch1_step import forced
from timing import best_ms

from tfnmt.core.config import ModelConfig
from tfnmt.models import build_model

CALLS = 60

model = build_model(ModelConfig.from_shape("small", vocab_size=8000, dropout=0.0))
rng = np.random.default_rng(0)
source = rng.integers(8, 8000, size=(1, 16)).astype(np.int32)
source[:, -1] = 3
source = tf.constant(source)
model({"source": source, "target": source})
model.keep_decoding_constants()
for beam in (1, 4):
    ms = {steps: best_ms(tf.function(forced(model, steps, beam), jit_compile=True), source,
                         repeats=CALLS) for steps in (1, 16, 64)}
    step = (ms[64] - ms[16]) / 48
    print(f"beam {beam}: a call of 1 / 16 / 64 steps {ms[1]:.2f} / {ms[16]:.2f} / {ms[64]:.2f} "
          f"ms; {step:.3f} ms a step", flush=True)
empty = best_ms(tf.function(lambda s: s + 1, jit_compile=True), source, repeats=CALLS)
print(f"an empty XLA call {empty:.3f} ms")
