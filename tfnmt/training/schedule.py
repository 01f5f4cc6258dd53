"""Learning-rate schedule: linear warm-up then inverse square root (Vaswani et al. 2017, Eq. 3)."""

import keras
import tensorflow as tf


class InverseSquareRoot(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * min(step / warmup, sqrt(warmup / step)), step counted from 1."""

    def __init__(self, peak, warmup_steps):
        self.peak, self.warmup_steps = peak, warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + 1.0
        warmup = float(max(self.warmup_steps, 1))
        return self.peak * tf.minimum(step / warmup, tf.math.rsqrt(step / warmup))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}
