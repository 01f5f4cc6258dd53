"""The teacher's decode loops under one process-wide setting (not part of the suite; run on an
idle CPU, one process per setting, the setting from the environment):
XLA_FLAGS=<flags> python tests/perf/step_settings.py <run_dir>
ONE_THREAD=1 python tests/perf/step_settings.py <run_dir>   # one intra-op thread

Averaged checkpoint, random 16-token sources, 17 forced steps, XLA: batch 1 greedy, batch 1
beam 4 and batch 32 beam 4, ms a call (best of 5 rounds of 40 / 30 / 5 calls)."""

import os
import sys
import time

import numpy as np
import tensorflow as tf

if os.environ.get("ONE_THREAD"):
    tf.config.threading.set_intra_op_parallelism_threads(1)

from tfnmt import runs  # noqa: E402
from tfnmt.data.tokenizer import EOS_ID  # noqa: E402
from tfnmt.decoding import search  # noqa: E402

model, _ = runs.restore_model(runs.load(sys.argv[1]), "averaged")
rng = np.random.default_rng(0)


def sources(batch):
    ids = np.zeros([batch, 16], np.int32)
    ids[:, :14] = rng.integers(10, model.config.vocab_size, [batch, 14])
    ids[:, 14] = EOS_ID
    return tf.constant(ids)


def decode_fn(beam, batch):
    limits = tf.fill([batch], 17)
    if beam == 1:
        return tf.function(lambda s: search.greedy_search(model, s, 32, limits)["ids"],
                           jit_compile=True, autograph=False)
    return tf.function(lambda s: search.beam_search(model, s, 32, limits, beam, 1.0)["ids"],
                       jit_compile=True, autograph=False)


cells = []
for beam, batch, calls in ((1, 1, 40), (4, 1, 30), (4, 32, 5)):
    fn, source = decode_fn(beam, batch), sources(batch)
    fn(source).numpy()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn(source).numpy()
        rounds.append((time.perf_counter() - start) / calls * 1e3)
    cells.append(f"b{batch} beam{beam} {min(rounds):7.2f}")
print(os.environ.get("XLA_FLAGS", "default"), os.environ.get("ONE_THREAD", ""), "|",
      " | ".join(cells), flush=True)
