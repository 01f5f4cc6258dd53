"""Encoder-decoders with a one-layer GRU decoder (Hybrid paper, Sec. 2): `hybrid` (Transformer
encoder) and the RNMT baseline `rnmt` (bidirectional GRU encoder, additive attention)."""

from tfnmt.layers.gru_decoder import GRUDecoder
from tfnmt.layers.rnn_encoder import BiGRUEncoder
from tfnmt.layers.transformer_encoder import TransformerEncoder
from tfnmt.models.base import EncoderDecoder


class RecurrentDecoderModel(EncoderDecoder):
    target_positions = False

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        gru = config.gru
        self.decoder = GRUDecoder(gru.hidden, config.d_model, gru.attention,
                                  gru.attention_units or gru.hidden,
                                  config.d_model, config.num_heads, config.dropout,
                                  name="decoder")

    def build_layers(self):
        hidden = (None, None, self.config.d_model)
        self.encoder.build(hidden)
        self.decoder.build(hidden, hidden)

    def logits(self, hidden, memory=None):
        return self.project(hidden, memory)

    def decode(self, decoder_input, encoded, source_mask, training=False):
        h0, memory = self.decoder.initial_state(encoded, source_mask)
        embedded = self.target_embedder(decoder_input, training=training)
        return self.logits(self.decoder(embedded, h0, memory, training=training))

    def initial_state(self, source, max_length):
        """Encodes once; pre-computes attention keys; the cache is the GRU state alone."""
        del max_length  # a recurrent decoder's state does not grow
        encoded, source_mask = self.encode(source)
        h0, memory = self.decoder.initial_state(encoded, source_mask)
        return {"cache": {"h": h0}, "memory": memory}

    def step(self, ids, position, cache, memory):
        del position
        out, h = self.decoder.step(self.target_embedder(ids), cache["h"], memory)
        return self.logits(out, memory), {"h": h}


class Hybrid(RecurrentDecoderModel):
    """Transformer encoder + GRU decoder."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.encoder = TransformerEncoder(config.encoder_layers, config.d_model,
                                          config.num_heads, config.ffn_dim, config.dropout,
                                          config.encoder_attention_dropout, config.pre_norm,
                                          name="encoder")


class RNMT(RecurrentDecoderModel):
    """Bidirectional GRU encoder + GRU decoder (the paper's RNMT baseline)."""

    source_positions = False

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.encoder = BiGRUEncoder(config.encoder_layers, config.d_model, config.dropout,
                                    name="encoder")
