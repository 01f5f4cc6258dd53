"""The one Transformer encoder every model shares: keras-hub TransformerEncoder layers."""

import keras
import keras_hub


class _EncoderLayer(keras_hub.layers.TransformerEncoder):
    """keras-hub's layer with its own rate for dropout on the attention probabilities (keras-hub
    has one rate for the residuals and the attention; ours are two flags)."""

    def __init__(self, attention_dropout, **kwargs):
        super().__init__(**kwargs)
        self.attention_dropout = attention_dropout

    def build(self, inputs_shape):
        super().build(inputs_shape)
        # keras MultiHeadAttention reads _dropout when it calls (0: the fused attention path);
        # its Dropout layer stays, so checkpoints keep the same variables.
        self._self_attention_layer._dropout = self.attention_dropout
        self._self_attention_layer._dropout_layer.rate = self.attention_dropout

    def get_config(self):
        return {**super().get_config(), "attention_dropout": self.attention_dropout}


class TransformerEncoder(keras.layers.Layer):
    def __init__(self, num_layers, d_model, num_heads, ffn_dim, dropout=0.1, attention_dropout=0.0,
                 pre_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.d_model, self.num_heads = num_layers, d_model, num_heads
        self.ffn_dim, self.dropout, self.pre_norm = ffn_dim, dropout, pre_norm
        self.attention_dropout = attention_dropout
        self.layers_ = [
            _EncoderLayer(attention_dropout, intermediate_dim=ffn_dim, num_heads=num_heads,
                          dropout=dropout, normalize_first=pre_norm, name=f"layer_{i}")
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
                "attention_dropout": self.attention_dropout, "pre_norm": self.pre_norm}

    def call(self, x, padding_mask, training=False):
        """x [B, S, d] embedded source, padding_mask [B, S] bool -> [B, S, d]."""
        for layer in self.layers_:
            x = layer(x, padding_mask=padding_mask, training=training)
        return self.final_norm(x) if self.final_norm is not None else x
