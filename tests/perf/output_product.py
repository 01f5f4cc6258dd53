"""The output product [rows, d] x [d, V] under XLA on CPU, and what computing it as
[V, d] x [d, rows] changes (rows_first_product of commit 732d765, measured slower end to end
and reverted: docs/decisions.md) (not part of the suite; idle CPU):
    python tests/perf/output_product.py                 # the product alone, one thread
    python tests/perf/output_product.py <run_dir> <checkpoint> <source file> [sentences]
        [batch sizes] [beam]                            # whole translation, A/B in one process
The first form times 50 dependent products of [M, 256] by a [256, 8000] (and a [256, 1024])
table for M from 1 to 128: as a dot (XLA streams the table once per ~4 rows), and as the table
stored [V, d] times the rows transposed behind an optimization barrier, then transposed back.
The second (only with commit 732d765's tfnmt on PYTHONPATH) translates with the run's own
decoding (its method; beam 4 by default, length penalty 1.0, XLA) with rows_first_product off
(ROWS_FIRST_MIN huge) and on, interleaved, 3 passes each after a warm-up pass; prints both
times, the ratio and whether the translations are identical. THREADS=N sets the intra-op
threads (default: one for the product alone, TensorFlow's default for translation)."""
import json
import os
import sys
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


def translation_ab(run_dir, which, source_file, count, batch_sizes, beam):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from timing import interleaved_seconds
    if os.environ.get("THREADS"):
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ["THREADS"]))
    from tfnmt import runs
    from tfnmt.core.config import DecodeConfig
    from tfnmt.inference.translator import resolve_method, Translator
    from tfnmt.models import base

    if not hasattr(base, "ROWS_FIRST_MIN"):
        sys.exit("the A/B needs commit 732d765's tfnmt (rows_first_product was reverted)")
    run = runs.load(run_dir)
    model, checkpoint = runs.restore_model(run, which)
    with open(source_file, encoding="utf-8") as f:
        sentences = [line.rstrip("\n") for line in f][:count]
    print(json.dumps({"run": run_dir, "checkpoint": checkpoint,
                      "sentences": len(sentences)}), flush=True)
    on = base.ROWS_FIRST_MIN
    for batch in batch_sizes:
        config = resolve_method(DecodeConfig(beam_size=beam, length_penalty=1.0,
                                             batch_size=batch, xla=True, method="auto"), run)
        translators, outputs = {}, {}
        for tag, rows_min in (("dot", 10 ** 9), ("rows_first", on)):
            base.ROWS_FIRST_MIN = rows_min  # read when the decode function is traced
            translators[tag] = Translator(model, *run.tokenizers(), config,
                                          run.model.max_length)
            outputs[tag] = translators[tag].translate(sentences)  # compiles every program
        base.ROWS_FIRST_MIN = on
        best = interleaved_seconds(translators, sentences)
        before, after = best["dot"], best["rows_first"]
        print(json.dumps({f"{config.method} batch {batch} beam {beam}": {
            "dot_s": round(before, 3), "rows_first_s": round(after, 3),
            "speedup": round(before / after, 2),
            "same_translations": [r[0][0] for r in outputs["dot"]] ==
                                 [r[0][0] for r in outputs["rows_first"]]}}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 1:
        product_alone()
    else:
        translation_ab(sys.argv[1], sys.argv[2], sys.argv[3],
                       int(sys.argv[4]) if len(sys.argv) > 4 else 400,
                       [int(b) for b in (sys.argv[5] if len(sys.argv) > 5 else "1,8,32")
                        .split(",")],
                       int(sys.argv[6]) if len(sys.argv) > 6 else 4)
