"""tfnmt: fast-inference neural machine translation on TensorFlow 2 / Keras 3."""

import os as _os

# Library code is TensorFlow-only (tf.function, tf.distribute, SavedModel): pin the Keras backend.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
