"""The output table laid out for decoding once (kept in variables, as runs.restore_model does)
against once per decode call, in one process (not part of the suite; run on an idle CPU):
python tests/perf/kept_constants.py <run_dir> <batch> [precisions, e.g. float32,int8]

The run's averaged checkpoint; a 16-token random source per row, 17 forced steps, greedy
and beam 4, XLA; the two layouts alternated twice, the best of 40 calls of each kept."""

import sys

import numpy as np
import tensorflow as tf
from timing import best_ms

from tfnmt import runs
from tfnmt.data.tokenizer import EOS_ID
from tfnmt.decoding import search

run_dir, batch = sys.argv[1], int(sys.argv[2])
precisions = sys.argv[3].split(",") if len(sys.argv) > 3 else ["float32", "int8"]
run = runs.load(run_dir)
source = np.zeros([batch, 16], np.int32)
source[:, :15] = np.random.default_rng(0).integers(10, run.model.vocab_size, [batch, 15])
source[:, 15] = EOS_ID
source = tf.constant(source)
for precision in precisions:
    model, _ = runs.restore_model(run, "averaged", precision)
    for beam in (1, 4):
        times = {True: [], False: []}
        for _ in range(2):
            for keep in (True, False):
                model.keep_decoding_constants(keep)
                decode = tf.function(lambda s: search.decode(
                    model, s, 32, beam, 1.0, 0.0, 17, min_length=17)["ids"],
                    jit_compile=True, autograph=False)  # traced anew for each layout
                times[keep].append(best_ms(decode, source, repeats=40))
        kept, per_call = min(times[True]), min(times[False])
        print(f"{precision} batch {batch} beam {beam}, 17 steps: kept {kept:.2f} ms, "
              f"per call {per_call:.2f} ms ({per_call / kept:.3f}x)", flush=True)
