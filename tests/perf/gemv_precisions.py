"""One 256 x 8000 matrix-vector product (a batch-1 output layer) 200 times in a loop, by weight
precision and kernel, XLA and not: python tests/perf/gemv_precisions.py (idle CPU; manual).
XLA_FLAGS in the environment apply to the XLA rows."""

import time

import numpy as np
import tensorflow as tf

STEPS = 200
rng = np.random.default_rng(0)
W32 = tf.constant(rng.normal(size=(256, 8000)).astype(np.float32))
W16 = tf.cast(W32, tf.bfloat16)
W8 = tf.cast(tf.clip_by_value(W32 * 40, -127, 127), tf.int8)
W32T, W8T = tf.transpose(W32), tf.transpose(W8)
X = tf.constant(rng.normal(size=(1, 256)).astype(np.float32))


def int8_product(x):
    x8 = tf.cast(tf.clip_by_value(x * 10, -127, 127), tf.int8)
    return tf.cast(tf.raw_ops.BatchMatMulV3(x=x8, y=W8, Tout=tf.int32), tf.float32)


PRODUCTS = {
    "float32": lambda x: tf.matmul(x, W32),
    "bf16 cast": lambda x: tf.cast(tf.matmul(tf.cast(x, tf.bfloat16), W16), tf.float32),
    "bf16 BatchMatMulV3 Tout=f32": lambda x: tf.raw_ops.BatchMatMulV3(
        x=tf.cast(x, tf.bfloat16), y=W16, Tout=tf.float32),
    "int8 BatchMatMulV3 Tout=i32": int8_product,
    # The product written as a broadcast multiply and a sum over the rows: XLA fuses the
    # widening into the reduction, so the loop reads the weights at their own precision.
    "float32 reduce": lambda x: tf.reduce_sum(x[:, :, None] * W32[None], axis=1),
    "bf16 reduce": lambda x: tf.reduce_sum(x[:, :, None] * tf.cast(W16, tf.float32)[None],
                                           axis=1),
    "int8 reduce": lambda x: tf.reduce_sum(x[:, :, None] * tf.cast(W8, tf.float32)[None],
                                           axis=1),
    # The same over the table stored [8000, 256], summing along its minor dimension.
    "float32 row reduce": lambda x: tf.reduce_sum(x[:, None] * W32T[None], axis=2),
    "int8 row reduce": lambda x: tf.reduce_sum(x[:, None] * tf.cast(W8T, tf.float32)[None],
                                               axis=2),
}


def looped(product):
    """STEPS dependent products (each feeds the next), so none is hoisted out of the loop."""
    def run(x):
        def body(i, x):
            return i + 1, x + 1e-3 * product(x)[:, :256]
        return tf.while_loop(lambda i, x: i < STEPS, body, (0, x))[1]
    return run


for xla in (True, False):
    for name, product in PRODUCTS.items():
        fn = tf.function(looped(product), jit_compile=xla)
        try:
            fn(X).numpy()
        except tf.errors.OpError as e:
            print(f"xla={xla} {name}: no kernel ({type(e).__name__})")
            continue
        times = []
        for _ in range(15):
            start = time.perf_counter()
            fn(X).numpy()
            times.append(time.perf_counter() - start)
        print(f"xla={xla} {name}: {1e6 * min(times) / STEPS:.1f} us per product", flush=True)
