"""float32 against bfloat16 matrix products, plain graph (oneDNN) and XLA, one process: run on an
idle CPU from the repository root: python tests/perf/amx_matmul.py (GFLOP/s of a 4096x256 by
256x1024 product, 50 repeats; oneDNN uses AMX for bfloat16 where the CPU has it)."""
import time, tensorflow as tf
a = tf.random.normal([4096, 256]); w = tf.random.normal([256, 1024])
for dt in (tf.float32, tf.bfloat16):
    x, y = tf.cast(a, dt), tf.cast(w, dt)
    f = tf.function(lambda x, y: tf.matmul(x, y))
    f(x, y)
    t = time.perf_counter()
    for _ in range(50): f(x, y).numpy()
    el = (time.perf_counter() - t) / 50
    print(dt.name, f"{2*4096*256*1024/el/1e9:.0f} GFLOP/s")
    fx = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=True)
    fx(x, y)
    t = time.perf_counter()
    for _ in range(50): fx(x, y).numpy()
    el = (time.perf_counter() - t) / 50
    print(dt.name, "xla", f"{2*4096*256*1024/el/1e9:.0f} GFLOP/s")
