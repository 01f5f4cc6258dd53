"""Bidirectional GRU encoder: the RNMT baseline's encoder (Bahdanau et al. 2015)."""

import keras


class BiGRUEncoder(keras.layers.Layer):
    """Stacked bidirectional GRUs; each direction has d_model // 2 units (output d_model)."""

    def __init__(self, num_layers, d_model, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.d_model, self.dropout_rate = num_layers, d_model, dropout
        self.layers_ = [keras.layers.Bidirectional(
            # An explicit name: Keras's default ("gru_3") counts layers process-wide, and weight
            # names must not depend on how many models a process built before this one.
            keras.layers.GRU(d_model // 2, return_sequences=True, reset_after=True, name="gru"),
            merge_mode="concat", name=f"layer_{i}") for i in range(num_layers)]
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        for layer in self.layers_:
            layer.build(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "d_model": self.d_model,
                "dropout": self.dropout_rate}

    def call(self, x, padding_mask, training=False):
        for layer in self.layers_:
            x = self.dropout(layer(x, mask=padding_mask, training=training), training=training)
        return x
