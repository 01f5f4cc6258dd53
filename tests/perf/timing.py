"""What the perf scripts share (they run as `python tests/perf/<script>.py`, so this module is
beside them on the path)."""

import time

import tensorflow as tf


def best_ms(fn, *args, repeats=10):
    """The fastest of `repeats` calls of fn(*args), outputs fetched, after one warm-up call."""
    tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
        best = min(best, time.perf_counter() - start)
    return 1e3 * best
