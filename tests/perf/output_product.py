"""The output product [rows, d] x [d, V] under XLA on CPU, and what computing it as
[V, d] x [d, rows] changes (rows_first_product of commit 732d765, measured slower end to end
and reverted: docs/decisions.md) (not part of the suite; idle CPU):
    [THREADS=N] python tests/perf/output_product.py     # one intra-op thread by default
It times 50 dependent products of [M, 256] by a [256, 8000] (and a [256, 1024])
table for M from 1 to 128: as a dot (XLA streams the table once per ~4 rows), and as the table
stored [V, d] times the rows transposed behind an optimization barrier, then transposed back.
The whole-translation A/B of that change is this script's second form in a checkout of
732d765 (`git worktree add /tmp/rows_first 732d765`)."""
import json
import os
import time

import numpy as np
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla as tf2xla


def product_alone():
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("THREADS", "1")))

    def timed(f, a, w):
        def loop(a, w):
            def body(i, acc):  # every product depends on the step, none is hoisted
                return i + 1, acc + tf.reduce_sum(f(a + tf.cast(i, tf.float32), w))
            return tf.while_loop(lambda i, acc: i < 50, body, (0, 0.0))[1]
        fn = tf.function(loop, jit_compile=True)
        fn(a, w).numpy()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            fn(a, w).numpy()
            best = min(best, time.perf_counter() - start)
        return best / 50 * 1e3

    def rows_first(a, table):
        product = tf2xla.optimization_barrier(tf.matmul(table, a, transpose_b=True))[0]
        return tf.transpose(product)

    rng = np.random.default_rng(0)
    for vocab in (8000, 1024):
        kernel = tf.constant(rng.random([256, vocab], np.float32))
        table = tf.constant(rng.random([vocab, 256], np.float32))
        for m in (1, 4, 5, 6, 8, 16, 32, 64, 128):
            a = tf.constant(rng.random([m, 256], np.float32))
            dot, first = timed(tf.matmul, a, kernel), timed(rows_first, a, table)
            print(json.dumps({"rows": m, "V": vocab, "dot_ms": round(dot, 3),
                              "rows_first_ms": round(first, 3),
                              "speedup": round(dot / first, 2)}), flush=True)


if __name__ == "__main__":
    product_alone()
