"""The one Transformer encoder every model shares: keras-hub TransformerEncoder layers."""

import keras
import keras_hub


class TransformerEncoder(keras.layers.Layer):
    def __init__(self, num_layers, d_model, num_heads, ffn_dim, dropout=0.1, pre_norm=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.d_model, self.num_heads = num_layers, d_model, num_heads
        self.ffn_dim, self.dropout, self.pre_norm = ffn_dim, dropout, pre_norm
        self.layers_ = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim=ffn_dim, num_heads=num_heads, dropout=dropout,
                normalize_first=pre_norm, name=f"layer_{i}")
            for i in range(num_layers)]
        self.final_norm = (keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")
                           if pre_norm else None)

    def build(self, input_shape):
        for layer in self.layers_:
            layer.build(input_shape)
        if self.final_norm is not None:
            self.final_norm.build(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "d_model": self.d_model,
                "num_heads": self.num_heads, "ffn_dim": self.ffn_dim, "dropout": self.dropout,
                "pre_norm": self.pre_norm}

    def call(self, x, padding_mask, training=False):
        """x [B, S, d] embedded source, padding_mask [B, S] bool -> [B, S, d]."""
        for layer in self.layers_:
            x = layer(x, padding_mask=padding_mask, training=training)
        return self.final_norm(x) if self.final_norm is not None else x
