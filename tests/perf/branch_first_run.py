"""What the first run of a branch inside an XLA-compiled program costs (not part of the suite;
run on an idle CPU): python tests/perf/branch_first_run.py

One jit-compiled function with a tf.switch_case over six branches (a [4, 256] x [256, 4096]
product and a slice of another width each), compiled and run once with branch 0, then every
branch called twice: its first call against its second. HRT's fill and mask-predict choose
such a width branch per batch, so a benchmark warm-up must run every branch
(evaluation.benchmark.time_translation makes a whole untimed pass)."""

import time

import tensorflow as tf

w = tf.random.normal([256, 4096])


@tf.function(jit_compile=True)
def f(x, b):
    branches = [lambda k=k: tf.nn.relu(tf.matmul(x * (k + 1), w))[:, :k + 100] for k in range(6)]
    return tf.reduce_sum(tf.switch_case(b, branches))


x = tf.random.normal([4, 256])
f(x, tf.constant(0)).numpy()
for b in range(6):
    times = []
    for _ in range(2):
        start = time.perf_counter()
        f(x, tf.constant(b)).numpy()
        times.append(1000 * (time.perf_counter() - start))
    print(f"branch {b}: first call {times[0]:.2f} ms, second {times[1]:.2f} ms")
