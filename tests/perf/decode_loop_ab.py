"""A/B timing of the autoregressive decode loop in ONE process: an earlier commit's code
against the working tree, on the same random weights, interleaved repeats (ratios from one
invocation, never absolute times). Run on an idle CPU from the repository root:
    python tests/perf/decode_loop_ab.py <commit> [shape [max_length steps [precision]]]
Random Transformer of `shape` (default small: d 256, 3-3, vocabulary 8000), 20-token sources,
`steps` forced steps (default 30) in a loop of `max_length` slots (default 32); prints one JSON line per (batch, beam, XLA) cell with both times, the ratio and
whether the two produced the same ids. precision (float32, bfloat16 or int8): both models at it
(runs.at_precision of each side's code)."""
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from old_code import old_package  # noqa: E402

sys.path.insert(0, old_package(sys.argv[1]))
sys.path.insert(0, os.getcwd())
import tfnmt_old.core.config  # noqa: E402
import tfnmt_old.decoding.search  # noqa: E402
import tfnmt_old.models  # noqa: E402
import tfnmt_old.runs  # noqa: E402
from tfnmt import runs  # noqa: E402
from tfnmt.core.config import ModelConfig  # noqa: E402
from tfnmt.decoding import search  # noqa: E402
from tfnmt.models import build_model, named_weights  # noqa: E402

shape = sys.argv[2] if len(sys.argv) > 2 else "small"
limit, steps = (int(a) for a in (sys.argv[3:5] if len(sys.argv) > 4 else (32, 30)))
precision = sys.argv[5] if len(sys.argv) > 5 else "float32"
new = build_model(ModelConfig.from_shape(shape, vocab_size=8000, dropout=0.0))
old = tfnmt_old.models.build_model(
    tfnmt_old.core.config.ModelConfig.from_shape(shape, vocab_size=8000, dropout=0.0))
old_weights = tfnmt_old.models.named_weights(old)
for name, weight in named_weights(new).items():
    old_weights[name].assign(weight)
if precision != "float32":
    new, old = runs.at_precision(new, precision), tfnmt_old.runs.at_precision(old, precision)
rng = np.random.default_rng(0)
for batch, beam in [(32, 4), (32, 1), (1, 4), (1, 1)]:
    ids = rng.integers(8, 8000, size=(batch, 20)).astype(np.int32)
    ids[:, -1] = 3  # EOS
    source = tf.constant(ids)
    for xla in (True, False):
        fns = {tag: tf.function(lambda s, module=module, model=model: module.decode(
                   model, s, limit, beam, 1.0, max_length_a=0.0, max_length_b=steps,
                   min_length=steps)["ids"], jit_compile=xla)
               for tag, module, model in (("old", tfnmt_old.decoding.search, old),
                                          ("new", search, new))}
        outputs = {tag: fn(source).numpy() for tag, fn in fns.items()}  # compiles
        times = {tag: [] for tag in fns}
        for _ in range(7 if batch == 1 else 4):
            for tag, fn in fns.items():
                start = time.perf_counter()
                fn(source).numpy()
                times[tag].append(time.perf_counter() - start)
        before, after = min(times["old"]), min(times["new"])
        print(json.dumps({f"b{batch}_k{beam}_{'xla' if xla else 'plain'}": {
            "old_ms": round(1000 * before, 1), "new_ms": round(1000 * after, 1),
            "speedup": round(before / after, 2),
            "same_ids": bool((outputs["old"] == outputs["new"]).all())}}), flush=True)
