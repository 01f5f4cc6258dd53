"""Dropout on one [4096, 256] tensor, forward and backward, the three ways a training step can
compile it: the plain graph, --xla_elementwise's clusters and --xla (whole function). Keras's own
mask (TensorFlow's default generator) against tfnmt's counter hash (tfnmt/layers/dropout.py):
python tests/perf/dropout.py [--dtype=bfloat16] (idle CPU; manual; the cluster rows need the
process started with TF_XLA_FLAGS set, so it starts itself again for them)."""

import os
import subprocess
import sys
import time

CLUSTERS = "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit --tf_xla_ops_to_cluster=FUSIBLE"


def main(dtype, clusters):
    import keras
    import tensorflow as tf

    from tfnmt.layers import dropout as ours

    x = tf.cast(tf.random.stateless_normal([4096, 256], [0, 1]), dtype)
    def with_gradient(drop):
        seed = keras.random.SeedGenerator(7)

        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.cast(drop(x * x, 0.2, seed=seed), tf.float32))
            return tape.gradient(loss, x)
        return step

    variants = {"keras": ours._keras_dropout, "hash": ours.dropout,
                "none": lambda x, rate, seed: x}
    modes = {"graph + clusters": None} if clusters else {"graph": None, "xla": True}
    for mode, jit in modes.items():
        row = []
        for name, drop in variants.items():
            step = tf.function(with_gradient(drop), jit_compile=jit)
            step(x).numpy()
            repeats = 3 if (jit and name == "keras") else 30
            start = time.perf_counter()
            for _ in range(repeats):
                out = step(x)
            out.numpy()
            row.append(f"{name} {(time.perf_counter() - start) / repeats * 1e3:8.2f} ms")
        print(f"{dtype} {mode:17s} " + " | ".join(row), flush=True)


if __name__ == "__main__":
    dtype = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--dtype=")),
                 "float32")
    clusters = CLUSTERS in os.environ.get("TF_XLA_FLAGS", "")
    main(dtype, clusters)
    if not clusters:
        env = {**os.environ, "TF_XLA_FLAGS": CLUSTERS}
        subprocess.run([sys.executable] + sys.argv, env=env, check=True)
