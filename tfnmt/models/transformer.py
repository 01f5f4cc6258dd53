"""Transformer encoder-decoder (Vaswani et al. 2017): the AT teacher and baseline."""

import keras
import tensorflow as tf

from tfnmt.layers.transformer_decoder import TransformerDecoderLayer
from tfnmt.layers.transformer_encoder import TransformerEncoder
from tfnmt.models.base import EncoderDecoder


def causal_mask(length):
    """[1, T, T] bool, True where query t may attend to key s (s <= t)."""
    idx = tf.range(length)
    return (idx[None, :] <= idx[:, None])[None]


def visible_slots(ancestry, position):
    """ancestry [B, G, L] -> [B, G, L*G] bool: the cache slots (t*G + g) hypothesis g attends
    to at step `position`, its ancestors' at times t <= position."""
    group = ancestry.shape[1]
    visible = ((ancestry[..., None] == tf.range(group)) &
               (tf.range(tf.shape(ancestry)[2]) <= position)[None, None, :, None])
    return tf.reshape(visible, [tf.shape(ancestry)[0], group, -1])


class Transformer(EncoderDecoder):
    decoder_layer_class = TransformerDecoderLayer

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        d = config.d_model
        self.encoder = TransformerEncoder(config.encoder_layers, d, config.num_heads,
                                          config.ffn_dim, config.dropout,
                                          config.encoder_attention_dropout, config.pre_norm,
                                          name="encoder")
        self.decoder_layers = [
            self.decoder_layer_class(d, config.num_heads, config.ffn_dim, config.dropout,
                                    config.attention_dropout, config.pre_norm, name=f"decoder_{i}")
            for i in range(config.decoder_layers)]
        self.decoder_norm = (keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")
                             if config.pre_norm else None)

    def build_layers(self):
        hidden = (None, None, self.config.d_model)
        self.encoder.build(hidden)
        for layer in self.decoder_layers:
            layer.build(hidden)
        if self.decoder_norm is not None:
            self.decoder_norm.build(hidden)

    def logits(self, hidden, memory=None):
        if self.decoder_norm is not None:
            hidden = self.decoder_norm(hidden)
        return self.project(hidden, memory)

    def layer_input(self, index, x):
        """Hook before decoder layer `index`: (its input, the layer's action policy or None).
        The identity here; imitate-NAT's models add their action state."""
        del index
        return x, None

    # -- teacher-forced parallel pass -----------------------------------------------------------
    def decode(self, decoder_input, encoded, source_mask, self_mask=None, training=False,
               return_internals=False, positions=None, memory_kv=None, outputs=None,
               constants=None):
        """Parallel pass over decoder_input [B, T]; causal unless self_mask is given; position
        encodings at `positions` [B, T] (default 0 .. T-1). `memory_kv`: every layer's
        project_memory(encoded), when already computed; `outputs`: a function applied to the
        decoder's output before the vocabulary projection (the positions that will be read);
        `constants`: decoding_constants(vocab_ids), to project onto a shortlist.
        With return_internals, also returns
        {"hidden": every layer's output [B, T, d], "attention": every layer's cross-attention
        probabilities [B, H, T, S], "policy": every layer's action policy or None} (the teacher
        signals of the hint-based NART and imitate-NAT)."""
        if self_mask is None:
            self_mask = causal_mask(tf.shape(decoder_input)[1])
        memory_mask = source_mask[:, None, :]
        if positions is not None:
            positions = tf.cast(positions, self.target_embedder.compute_dtype)
        x = self.target_embedder(decoder_input, positions=positions, training=training)
        internals = {"hidden": [], "attention": [], "policy": []}
        for i, layer in enumerate(self.decoder_layers):
            x, policy = self.layer_input(i, x)
            kv = layer.project_memory(encoded) if memory_kv is None else memory_kv[i]
            x, probs = layer(x, kv, memory_mask, self_mask, training=training,
                             return_attention=True)
            internals["hidden"].append(x)
            internals["attention"].append(probs)
            internals["policy"].append(policy)
        logits = self.logits(x if outputs is None else outputs(x), constants)
        return (logits, internals) if return_internals else logits

    # -- incremental decoding -------------------------------------------------------------------
    def initial_state(self, source, max_length):
        """Encodes once; pre-computes cross-attention K/V; allocates [B, max_length] caches."""
        return self.state_from_encoding(*self.encode(source), max_length)

    def state_from_encoding(self, encoded, source_mask, max_length):
        """The cache: every layer's keys and values [B, H, L, D] (a slot per time and
        hypothesis, see attention.update_cache) and "ancestry" [B, 1, L]: for each hypothesis,
        the slot its prefix was computed in at every time (expand_cache and reorder_cache keep
        it, so beam search moves no keys or values)."""
        batch = tf.shape(encoded)[0]
        heads = self.config.num_heads
        shape = [batch, heads, max_length, self.config.d_model // heads]
        layers = [{"k": tf.zeros(shape, encoded.dtype), "v": tf.zeros(shape, encoded.dtype)}
                  for _ in self.decoder_layers]
        memory = {"kv": [layer.project_memory(encoded) for layer in self.decoder_layers],
                  "mask": source_mask[:, None, :]}
        return {"cache": {"layers": layers, "ancestry": tf.zeros([batch, 1, max_length],
                                                                 tf.int32)},
                "memory": memory}

    def expand_cache(self, cache, beam_size):
        """A fresh cache for `beam_size` hypotheses a sentence: beam_size slots a time, each
        hypothesis its own ancestor so far."""
        layers = tf.nest.map_structure(lambda t: tf.repeat(t, beam_size, axis=2),
                                       cache["layers"])
        ancestry = tf.repeat(cache["ancestry"], beam_size, axis=1)
        return {"layers": layers, "ancestry": ancestry + tf.range(beam_size)[None, :, None]}

    def reorder_cache(self, cache, origin, position):
        """After step `position`, hypothesis j continues hypothesis origin[:, j] [B, K]: it
        takes over that one's ancestry up to `position`; later slots stay its own."""
        beam = cache["ancestry"].shape[1]
        ancestry = tf.gather(cache["ancestry"], origin, batch_dims=1)
        future = tf.range(tf.shape(ancestry)[2]) > position
        own = tf.broadcast_to(tf.range(beam)[None, :, None], tf.shape(ancestry))
        return dict(cache, ancestry=tf.where(future[None, None, :], own, ancestry))

    def step(self, ids, position, cache, memory, embedding_position=None):
        """ids [G*B] at cache slot `position` -> (logits [G*B, V], updated cache). The position
        encoding is `embedding_position` when given (Skip-AT: position * k)."""
        x = self.target_embedder(ids[:, None], start_index=position if embedding_position is None
                                 else embedding_position)
        visible = visible_slots(cache["ancestry"], position)
        layers = []
        for i, (layer, layer_cache, kv) in enumerate(zip(self.decoder_layers, cache["layers"],
                                                         memory["kv"])):
            x, _ = self.layer_input(i, x)
            x, layer_cache = layer.step(x, position, layer_cache, kv, memory["mask"], visible)
            layers.append(layer_cache)
        return self.logits(x, memory)[:, 0], dict(cache, layers=layers)
