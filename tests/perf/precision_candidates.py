"""Low-precision decoding candidates on random weights, timed in ONE process (interleaved
repeats; ratios, never absolute times). Run on an idle CPU from the repository root:
    python tests/perf/precision_candidates.py [shape] [cells, e.g. 1x1,32x4]
Candidates, each with and without XLA, against float32 with XLA: bfloat16 variables and
matmuls (Keras policy "bfloat16", runs.at_precision); mixed_bfloat16 (float32 variables cast at
every use); Keras int8 quantization (int8 kernels, inputs quantized on the fly). Forced 17
decoder steps from 16-token sources (tfnmt.side_by_side's protocol); prints one JSON line per
cell: tokens/s, the ratio to float32 XLA, and the share of output tokens equal to float32's."""

import json
import sys
import time
import warnings

import tensorflow as tf

from tfnmt.runs import at_precision
from tfnmt.evaluation.side_by_side import STEPS, random_model, sources
from tfnmt.decoding import search

shape = sys.argv[1] if len(sys.argv) > 1 else "small"
cells = [tuple(int(n) for n in c.split("x")) for c in
         (sys.argv[2] if len(sys.argv) > 2 else "1x1,1x4,32x1,32x4").split(",")]
base = random_model(shape)
quantized = random_model(shape)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # layers without a quantize method (norms, softmax)
    quantized.quantize("int8")
models = {"float32": base, "bfloat16": at_precision(base, "bfloat16"),
          "mixed_bfloat16": at_precision(base, "mixed_bfloat16"), "keras_int8": quantized}
for batch, beam in cells:
    source = tf.concat([tf.constant(sources(batch), tf.int32), tf.fill([batch, 1], 3)], 1)
    fns, first = {}, {}
    for name, model in models.items():
        for xla in (True, False):
            key = f"{name}_{'xla' if xla else 'plain'}"
            fns[key] = tf.function(lambda s, model=model: search.decode(
                model, s, STEPS, beam, 1.0, max_length_a=0.0, max_length_b=STEPS,
                min_length=STEPS)["ids"], jit_compile=xla)
            first[key] = fns[key](source).numpy()  # compiles
    times = {key: [] for key in fns}
    for _ in range(5 if batch == 1 else 3):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn(source).numpy()
            times[key].append(time.perf_counter() - start)
    reference = min(times["float32_xla"])
    print(json.dumps({f"{shape} batch {batch} beam {beam}": {
        key: {"tokens_per_second": round(batch * STEPS / min(t), 1),
              "vs_float32_xla": round(reference / min(t), 2),
              "same_tokens": round(float((first[key] == first["float32_xla"]).mean()), 3)}
        for key, t in times.items()}}), flush=True)
