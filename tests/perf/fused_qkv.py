"""Whether one product with q, k and v's kernels side by side ([256, 768]) beats three
[256, 256] products of the same rows (not part of the suite; run on an idle CPU):
python tests/perf/fused_qkv.py

Each variant runs 200 dependent iterations in one XLA while loop at 1, 4 and 16 rows; best of
30 calls, microseconds an iteration; `one` is a single [256, 256] product for scale."""

import numpy as np
import tensorflow as tf
from timing import best_ms

STEPS = 200
rng = np.random.default_rng(0)
KERNELS = [tf.constant(rng.normal(size=(256, 256)).astype(np.float32) / 16) for _ in range(3)]
FUSED = tf.concat(KERNELS, axis=1)


def looped(product):
    """200 dependent iterations of x -> tanh(product(x)) in one XLA call."""
    @tf.function(jit_compile=True)
    def run(x):
        return tf.while_loop(lambda i, x: i < STEPS,
                             lambda i, x: (i + 1, tf.tanh(product(x))), (0, x))[1]
    return run


VARIANTS = {
    "separate": looped(lambda x: sum(tf.matmul(x, w) for w in KERNELS)),
    "fused": looped(lambda x: sum(tf.split(tf.matmul(x, FUSED), 3, axis=1))),
    "one": looped(lambda x: tf.matmul(x, KERNELS[0])),
}
x0 = tf.constant(rng.normal(size=(1, 256)).astype(np.float32))
for rows in (1, 4, 16):
    x = tf.tile(x0, [rows, 1])
    out = [f"{name} {1e3 * best_ms(run, x, repeats=30) / STEPS:.1f}"
           for name, run in VARIANTS.items()]
    print(f"rows {rows} (us an iteration): " + ", ".join(out), flush=True)
dots = VARIANTS["separate"].experimental_get_compiler_ir(x0)(stage="optimized_hlo").count(" dot(")
print(f"dots in the separate variant's optimised HLO: {dots}")
