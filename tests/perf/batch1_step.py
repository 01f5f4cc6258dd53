"""Where a batch-1 greedy step goes (not part of the suite; run on an idle CPU):
python tests/perf/batch1_step.py

A random small Transformer (d 256, 3-3) decodes one 16-token source to 16 and to 64 forced
steps under XLA; the difference over 48 steps is the marginal cost of a step. Rows: float32
with output vocabularies 8000 and 1000 (the cost of reading the output layer), and the
bfloat16 and int8 models (runs.at_precision), with the element types the loop's dots read."""

import collections
import re
import time

import numpy as np
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import ModelConfig
from tfnmt.decoding import search
from tfnmt.models import build_model


def loop_dot_types(hlo):
    """Element types of the operands of the dots in the while body, counted."""
    body = re.search(r"body=%([\w.]+)", hlo.split("\nENTRY")[1]).group(1)
    text = hlo.split(f"\n%{body} ")[1].split("\n}\n")[0]
    kinds = {m.group(1): m.group(2) for m in re.finditer(r"%([\w.-]+) = (\w+)\[", text)}
    out = collections.Counter()
    for lhs, rhs in re.findall(r" dot\(%([\w.-]+), %([\w.-]+)\)", text):
        out[f"{kinds.get(lhs, '?')} x {kinds.get(rhs, '?')}"] += 1
    return dict(out)


def forced(model, steps, beam=1):
    def decode(source):
        return search.decode(model, source, steps, beam, 1.0, max_length_a=0.0,
                             max_length_b=steps, min_length=steps)["ids"]
    return decode


def marginal_ms(model, vocab):
    rng = np.random.default_rng(0)
    source = rng.integers(8, vocab, size=(1, 16)).astype(np.int32)
    source[:, -1] = 3
    source = tf.constant(source)
    best, hlo = {}, None
    for steps in (16, 64):
        fn = tf.function(forced(model, steps), jit_compile=True)
        fn(source).numpy()
        times = []
        for _ in range(40):
            start = time.perf_counter()
            fn(source).numpy()
            times.append(time.perf_counter() - start)
        best[steps] = min(times)
        hlo = fn.experimental_get_compiler_ir(source)(stage="optimized_hlo")
    return 1000 * (best[64] - best[16]) / 48, loop_dot_types(hlo)


if __name__ == "__main__":
    for vocab, precision in ((8000, "float32"), (1000, "float32"), (8000, "bfloat16"),
                             (8000, "int8")):
        model = build_model(ModelConfig.from_shape("small", vocab_size=vocab, dropout=0.0))
        if precision != "float32":
            model = runs.at_precision(model, precision)
        ms, dots = marginal_ms(model, vocab)
        print(f"vocab {vocab} {precision}: {ms:.3f} ms a step; loop dots {dots}", flush=True)
