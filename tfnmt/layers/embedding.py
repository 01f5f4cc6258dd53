"""Token embeddings (keras-hub ReversibleEmbedding, so the output layer can be tied) + sinusoids."""

import math

import keras
import keras_hub


class Embedder(keras.layers.Layer):
    """ids -> sqrt(d) * E[ids] + sinusoidal position encoding, then dropout.

    With with_positions=False (recurrent encoders and decoders): E[ids], then dropout.
    """

    def __init__(self, token_embedding, d_model, dropout, with_positions=True, **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.d_model, self.dropout_rate = d_model, dropout
        self.with_positions = with_positions
        self.position_encoding = keras_hub.layers.SinePositionEncoding(name="positions")
        self.scale = math.sqrt(d_model) if with_positions else 1.0
        self.dropout = keras.layers.Dropout(dropout)

    def call(self, ids, start_index=0, positions=None, training=False):
        x = self.token_embedding(ids) * self.scale
        if self.with_positions:
            x += self.position_encoding(x, start_index=start_index, positions=positions)
        return self.dropout(x, training=training)

    def get_config(self):
        # The token table is a layer of its own (shared with the output projection in a model):
        # serialized whole, so from_config rebuilds an unshared copy of it.
        return {**super().get_config(),
                "token_embedding": keras.saving.serialize_keras_object(self.token_embedding),
                "d_model": self.d_model, "dropout": self.dropout_rate,
                "with_positions": self.with_positions}

    @classmethod
    def from_config(cls, config):
        config = dict(config, token_embedding=keras.saving.deserialize_keras_object(
            config["token_embedding"]))
        return super().from_config(config)


def token_embedding(vocab_size, d_model, name):
    return keras_hub.layers.ReversibleEmbedding(
        vocab_size, d_model, tie_weights=True,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=d_model ** -0.5), name=name)
