"""One-layer GRU decoder with attention (Hybrid paper, Sec. 2.1; Bahdanau et al. 2015).

Per step t, with the attention query taken from the previous state:
    [u_z, u_r, u_n, q] = U h_{t-1} + b_u               (one matmul: gates + attention query)
    c_t = attention(q, encoder memory)                  (keys pre-computed once per sentence)
    [x_z, x_r, x_n] = W_e e_{t-1} + W_c c_t + b_x       (W_e e pre-computed for all t in training)
    z = s(x_z + u_z), r = s(x_r + u_r), n = tanh(x_n + r * u_n), h_t = (1 - z) n + z h_{t-1}
    o_t = tanh(W_o [h_t; c_t; e_{t-1}] + b_o)           (the output layer's input)
The gate form is the GRU "reset after" variant (Cho et al. 2014 as in cuDNN), which lets the
three recurrent maps share one matmul with the attention query.
"""

import keras
import tensorflow as tf

from tfnmt.layers.rnn_attention import make_attention


class GRUDecoder(keras.layers.Layer):
    def __init__(self, hidden_size, output_size, attention="additive", attention_units=None,
                 d_model=None, num_heads=8, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size, self.output_size = hidden_size, output_size
        # The constructor arguments for get_config (self.attention and self.dropout are layers).
        self.attention_kind, self.attention_units = attention, attention_units
        self.d_model, self.num_heads, self.dropout_rate = d_model, num_heads, dropout
        self.attention = make_attention(attention, attention_units or hidden_size,
                                        d_model, num_heads)
        h = hidden_size
        self.recurrent = keras.layers.Dense(3 * h + self.attention.query_dim, name="recurrent")
        self.input_embedding = keras.layers.Dense(3 * h, name="input_embedding")
        self.input_context = keras.layers.Dense(3 * h, use_bias=False, name="input_context")
        self.initial = keras.layers.Dense(h, activation="tanh", name="initial")
        self.readout = keras.layers.Dense(output_size, activation="tanh", name="readout")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, embedding_shape, memory_shape):
        h, d = self.hidden_size, memory_shape[-1]
        self.memory_dim = d
        self.attention.build(memory_shape)
        self.recurrent.build((None, h))
        self.input_embedding.build(embedding_shape)
        self.input_context.build((None, d))
        self.initial.build((None, d))
        self.readout.build((None, h + d + embedding_shape[-1]))
        self.built = True

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "output_size": self.output_size, "attention": self.attention_kind,
                "attention_units": self.attention_units, "d_model": self.d_model,
                "num_heads": self.num_heads, "dropout": self.dropout_rate}

    def initial_state(self, memory, mask):
        """(h_0 = tanh(W mean of the real encoder states), pre-computed attention memory)."""
        weights = tf.cast(mask, memory.dtype)[:, :, None]
        mean = tf.reduce_sum(memory * weights, 1) / tf.maximum(tf.reduce_sum(weights, 1), 1.0)
        return self.initial(mean), self.attention.project_memory(memory, mask)

    def _cell(self, x_embedding, h, memory_state):
        """One GRU update given W_e e_{t-1} + b_x: returns (h_t, c_t, attention probs)."""
        u, query = self.recurrent_step(h)
        context, probs = self.attention_step(query, memory_state)
        return self.gate_step(x_embedding, u, context, h), context, probs

    # The parts of a step, separately callable (the time breakdown times each).
    def recurrent_step(self, h):
        """h_{t-1} -> (recurrent gate maps U h + b [B, 3H], attention query [B, A]): one matmul."""
        hq = self.recurrent(h)
        return hq[:, : 3 * self.hidden_size], hq[:, 3 * self.hidden_size:]

    def attention_step(self, query, memory_state):
        context, probs = self.attention.attend(query[:, None, :], memory_state)
        return context[:, 0], probs[:, 0]

    def gate_step(self, x_embedding, u, context, h):
        x_z, x_r, x_n = tf.split(x_embedding + self.input_context(context), 3, axis=-1)
        u_z, u_r, u_n = tf.split(u, 3, axis=-1)
        z = tf.sigmoid(x_z + u_z)
        r = tf.sigmoid(x_r + u_r)
        n = tf.tanh(x_n + r * u_n)
        return (1.0 - z) * n + z * h

    def _output(self, h, context, embedding, training=False):
        return self.readout(self.dropout(tf.concat([h, context, embedding], -1),
                                         training=training))

    def call(self, embeddings, h0, memory_state, training=False, return_attention=False):
        """Teacher-forced pass over embeddings [B, T, E] of the shifted targets -> [B, T, out]."""
        x_embedding = tf.transpose(self.input_embedding(embeddings), [1, 0, 2])

        def scan_step(carry, x_t):
            h, _, _ = carry
            return self._cell(x_t, h, memory_state)

        batch, source_len = tf.shape(h0)[0], tf.shape(memory_state["mask"])[1]
        init = (h0, tf.zeros([batch, self.memory_dim], h0.dtype),
                tf.zeros([batch, source_len], h0.dtype))
        hs, contexts, probs = tf.scan(scan_step, x_embedding, initializer=init)
        hs, contexts = tf.transpose(hs, [1, 0, 2]), tf.transpose(contexts, [1, 0, 2])
        out = self._output(hs, contexts, embeddings, training)
        return (out, tf.transpose(probs, [1, 0, 2])) if return_attention else out

    def step(self, embedding, h, memory_state):
        """embedding [B, E] of the previous token, h [B, H] -> (output [B, out], h_t)."""
        h, context, _ = self._cell(self.input_embedding(embedding), h, memory_state)
        return self._output(h, context, embedding), h
