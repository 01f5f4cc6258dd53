"""TensorFlow's own quantized matmul ops at one row (a batch-1 output layer, 256 x 8000), in
the plain graph (they have no XLA kernel), against the float32 product: python
tests/perf/quantized_ops.py (idle CPU; manual). The products are chained in an unrolled loop:
in a tf.while_loop the quantized ops fail to run (NextIteration has no kernel beside them)."""

import time

import numpy as np
import tensorflow as tf

STEPS = 200
rng = np.random.default_rng(0)
W32 = tf.constant(rng.normal(size=(256, 8000)).astype(np.float32))
W8 = np.clip(rng.normal(size=(256, 8000)) * 40, -127, 127).astype(np.int8)
W_QINT8 = tf.bitcast(tf.constant(W8), tf.qint8)
W_QUINT8 = tf.bitcast(tf.constant((W8.astype(np.int32) + 128).astype(np.uint8)), tf.quint8)
X = tf.constant(rng.normal(size=(1, 256)).astype(np.float32))
RANGES = dict(min_a=-12.8, max_a=12.7, min_b=-3.2, max_b=3.2)


def quint8(x):
    return tf.bitcast(tf.cast(tf.clip_by_value(x * 10 + 128, 0, 255), tf.uint8), tf.quint8)


def quantized_matmul(x):  # gemmlowp: quint8 x quint8 only (quint8 x qint8 has no kernel)
    out, _, _ = tf.raw_ops.QuantizedMatMul(a=quint8(x), b=W_QUINT8, Toutput=tf.qint32,
                                           **RANGES)
    return tf.cast(tf.bitcast(out, tf.int32), tf.float32)


def with_bias_and_dequantize(x):  # oneDNN's fused int8 product with a float32 output
    return tf.raw_ops.QuantizedMatMulWithBiasAndDequantize(
        a=quint8(x), b=W_QINT8, bias=tf.zeros([8000]), min_freezed_output=-1e3,
        max_freezed_output=1e3, Toutput=tf.float32, input_quant_mode="MIN_FIRST", **RANGES)


PRODUCTS = {"float32 MatMul": lambda x: tf.matmul(x, W32),
            "QuantizedMatMul quint8": quantized_matmul,
            "QuantizedMatMulWithBiasAndDequantize qint8": with_bias_and_dequantize}


def chained(product):
    def run(x):
        for _ in range(STEPS):
            x = x + 1e-3 * product(x)[:, :256]
        return x
    return run


for name, product in PRODUCTS.items():
    fn = tf.function(chained(product))
    fn(X).numpy()
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        fn(X).numpy()
        best = min(best, time.perf_counter() - start)
    print(f"{name}: {best / STEPS * 1e6:.0f} us a product", flush=True)
