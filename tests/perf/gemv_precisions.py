"""One 256 x 8000 matrix-vector product (a batch-1 output layer) 200 times in a loop, by weight
precision and kernel, XLA and not: python tests/perf/gemv_precisions.py (idle CPU; manual)."""
import time, numpy as np, tensorflow as tf
W32 = tf.constant(np.random.default_rng(0).normal(size=(256, 8000)).astype(np.float32))
Wbf = tf.cast(W32, tf.bfloat16)
Wi8 = tf.cast(tf.clip_by_value(W32 * 40, -127, 127), tf.int8)
x0 = tf.constant(np.random.default_rng(1).normal(size=(1, 256)).astype(np.float32))
def loop(mm):
    def f(x):
        def body(i, x):
            y = mm(x)
            return i + 1, x + 1e-3 * y[:, :256]
        return tf.while_loop(lambda i, x: i < 200, body, (0, x))[1]
    return f
variants = {
 "f32": lambda x: tf.matmul(x, W32),
 "bf16 cast": lambda x: tf.cast(tf.matmul(tf.cast(x, tf.bfloat16), Wbf), tf.float32),
 "bf16 BatchMatMulV3 Tout=f32": lambda x: tf.raw_ops.BatchMatMulV3(x=tf.cast(x, tf.bfloat16), y=Wbf, Tout=tf.float32),
 "int8 BatchMatMulV3 Tout=i32": lambda x: tf.cast(tf.raw_ops.BatchMatMulV3(x=tf.cast(tf.clip_by_value(x * 10, -127, 127), tf.int8), y=Wi8, Tout=tf.int32), tf.float32),
}
for xla in (True, False):
    for name, mm in variants.items():
        try:
            fn = tf.function(loop(mm), jit_compile=xla); fn(x0).numpy()
            best = min((lambda t: (fn(x0).numpy(), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(15))
            print(f"xla={xla} {name}: {1e6*best/200:.1f} us per gemv")
        except Exception as e:
            print(f"xla={xla} {name}: failed {type(e).__name__}: {str(e)[:100]}")
