"""Attention scores with a mask added, in a plain graph, where TensorFlow fuses the scale and the
mask into oneDNN's batched matmul, by the mask's shape (manual; idle CPU):
    python tests/perf/fused_mask_add.py
A [1, 1, T, T] addend (the causal mask shared by the batch) has only oneDNN's reference kernel;
attention therefore broadcasts a shared mask over the batch first."""

import time

import numpy as np
import tensorflow as tf

B, H, T, D = 170, 4, 24, 64  # a 4,096-token training batch of 24-token targets
rng = np.random.default_rng(0)
Q, K = (tf.constant(rng.normal(size=(B, H, T, D)).astype(np.float32)) for _ in range(2))
CAUSAL = tf.linalg.band_part(tf.ones([T, T]), -1, 0)[None, None]


def best_ms(dtype, shape):
    mask = tf.cast(tf.broadcast_to(1.0 - CAUSAL, shape), dtype) * -1e4
    q, k = tf.cast(Q, dtype), tf.cast(K, dtype)
    scores = tf.function(lambda: tf.matmul(q, k, transpose_b=True) * tf.cast(0.125, dtype) + mask)
    scores()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        scores().numpy()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


for dtype in (tf.float32, tf.bfloat16):
    for shape in ([1, 1, T, T], [B, 1, T, T], [1, H, T, T], [B, H, T, T]):
        print(f"{dtype.name} mask {shape}: {best_ms(dtype, shape):.2f} ms", flush=True)
