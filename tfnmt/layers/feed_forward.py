"""Position-wise feed-forward sub-layer (Vaswani et al. 2017, Eq. 2)."""

import keras


class FeedForward(keras.layers.Layer):
    def __init__(self, d_model, ffn_dim, dropout=0.0, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.ffn_dim, self.dropout, self.activation = (
            d_model, ffn_dim, dropout, activation)
        self.inner = keras.layers.Dense(ffn_dim, activation=activation, name="inner")
        self.outer = keras.layers.Dense(d_model, name="outer")
        self.inner_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.outer.build(input_shape[:-1] + (self.ffn_dim,))

    def call(self, x, training=False):
        return self.outer(self.inner_dropout(self.inner(x), training=training))

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "ffn_dim": self.ffn_dim,
                "dropout": self.dropout, "activation": self.activation}
