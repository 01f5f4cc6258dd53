from tfnmt.layers import dropout  # noqa: F401  (Keras's Dropout layers draw masks there)
