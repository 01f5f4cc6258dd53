"""What every encoder-decoder shares: token tables, the encoder call, the output projection.

Decoding interface of every incremental model (see tfnmt/decoding.py):
  state = model.initial_state(source_ids, max_length)   # {"cache": ..., "memory": ...}
  logits, cache = model.step(ids [B], position, state["cache"], state["memory"])
"cache" follows the hypotheses (beam search expands and reorders it, see decoding/search.py);
"memory" (encoder keys/values, source mask) is per sentence, and the decode loops add
model.decoding_constants() to it once per call.
"""

import keras
import tensorflow as tf

from tfnmt.core.errors import UserError
from tfnmt.data.sequences import shift_right
from tfnmt.data.tokenizer import PAD_ID
from tfnmt.layers.attention import NEG_INF
from tfnmt.layers.embedding import Embedder, token_embedding


def quantize_columns(kernel):
    """[d, V] float -> (int8 [d, V], scale [1, V]): Keras's abs-max scheme per output unit, as
    its int8 Dense layers quantize their kernels (column = int8 column / scale)."""
    return keras.quantizers.abs_max_quantize(tf.cast(kernel, tf.float32), axis=0)


def int8_product(x, kernel, scale):
    """x [..., d] float times the quantize_columns kernel: each row of x quantized the same way,
    an int8 x int8 -> int32 matmul (oneDNN's or XLA's int8 kernels), then both scales undone."""
    rows = tf.reshape(tf.cast(x, tf.float32), [-1, tf.shape(x)[-1]])
    rows, row_scale = keras.quantizers.abs_max_quantize(rows, axis=-1)
    product = tf.raw_ops.BatchMatMulV3(x=rows, y=kernel, Tout=tf.int32)
    out = tf.cast(product, tf.float32) / (row_scale * scale)
    out = tf.reshape(out, tf.concat([tf.shape(x)[:-1], [-1]], 0))
    out.set_shape(x.shape[:-1].concatenate(kernel.shape[-1:]))  # V stays static, batch or not
    return tf.cast(out, x.dtype)


class EncoderDecoder(keras.Model):
    """Subclasses set self.encoder (call(x, padding_mask, training)) and implement decode,
    initial_state and step; `source_positions`/`target_positions` say whether embeddings get
    sinusoids (self-attention) or not (recurrent layers)."""

    source_positions = True
    target_positions = True
    # Set by runs.at_precision("int8") on a tied output table (Keras leaves the shared table
    # float32): decode loops then quantize its [d, V] layout once per call (decoding_constants).
    int8_output = False
    # keep_decoding_constants(): the tied table's decoding layout in variables (or None).
    _kept = None

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        d = config.d_model
        self.source_table = token_embedding(config.vocab_size, d, "source_embedding")
        self.target_table = (self.source_table if config.share_embeddings else
                             token_embedding(config.output_vocab_size, d, "target_embedding"))
        self.source_embedder = Embedder(self.source_table, d, config.dropout,
                                        self.source_positions, name="source_embed")
        self.target_embedder = Embedder(self.target_table, d, config.dropout,
                                        self.target_positions, name="target_embed")
        if not config.tie_output:
            self.output_projection = keras.layers.Dense(config.output_vocab_size, name="output")

    def build(self, input_shape=None):
        """Creates every variable up front (decoding calls sub-layer methods, not __call__)."""
        self.source_table.build((None, None))
        self.target_table.build((None, None))
        if not self.config.tie_output:
            self.output_projection.build((None, None, self.config.d_model))
        self.build_layers()
        self.built = True

    def build_layers(self):
        raise NotImplementedError

    def encode(self, source, training=False):
        """source [B, S] ids -> (encoder output [B, S, d], source mask [B, S] bool)."""
        mask = tf.not_equal(source, PAD_ID)
        x = self.source_embedder(source, training=training)
        return self.encoder(x, padding_mask=mask, training=training), mask

    def project(self, hidden, memory=None):
        """Decoder output [..., d] -> logits over the target vocabulary; inside a decode loop,
        with the tied table laid out once per call by decoding_constants (in `memory`)."""
        if memory is not None and "output_kernel" in memory:
            kernel = memory["output_kernel"]
            if "output_scale" in memory:
                logits = int8_product(hidden, kernel, memory["output_scale"])
            else:
                logits = tf.einsum("...d,dv->...v", tf.cast(hidden, kernel.dtype), kernel)
            return logits + memory["output_bias"] if "output_bias" in memory else logits
        if self.config.tie_output:
            return self.target_table(hidden, reverse=True)
        return self.output_projection(hidden)

    def decoding_constants(self, vocab_ids=None):
        """What a decode loop computes once per call and adds to every step's `memory`: the tied
        output table as a [d, V] matrix (inside the loop, XLA on CPU would otherwise lay the
        [V, d] table out again at every step: measured +0.2 ms on a 0.6 ms beam-12 step), or
        the copy keep_decoding_constants made of it; with a shortlist `vocab_ids` [N], only its
        N columns (and biases) of the output layer; with int8_output, the table's columns in
        int8 and their scales (quantize_columns, column by column: the same before or after
        the shortlist's gather)."""
        if self._kept is not None:
            constants = {k: tf.convert_to_tensor(v) for k, v in self._kept.items()}
        elif self.config.tie_output:
            kernel = tf.transpose(tf.cast(self.target_table.embeddings, self.compute_dtype))
            constants = dict(zip(("output_kernel", "output_scale"), quantize_columns(kernel))
                             if self.int8_output else {"output_kernel": kernel})
        elif vocab_ids is None:
            return {}
        else:
            if self.output_projection.kernel.dtype not in ("float32", "bfloat16", "float16"):
                raise UserError("a shortlist needs an unquantized output layer.")
            constants = {"output_kernel": self.output_projection.kernel,
                         "output_bias": self.output_projection.bias}
        if vocab_ids is not None:  # kernel [d, V], scale [1, V], bias [V]: columns are last
            constants = {k: tf.gather(v, vocab_ids, axis=-1) for k, v in constants.items()}
            # The PAD copies that fill a union to its size (every PAD after the first) stand
            # for no token: a -inf logit keeps them out of every softmax, so no score depends
            # on how much a batch's union was padded.
            pads = tf.cast(tf.equal(vocab_ids, PAD_ID), tf.int32)
            filler = tf.where((pads > 0) & (tf.cumsum(pads) > 1), NEG_INF, 0.0)
            filler = tf.cast(filler, self.compute_dtype)
            constants["output_bias"] = constants.get("output_bias", 0) + filler
        return constants

    def keep_decoding_constants(self, keep=True):
        """Lays the tied output table out for decoding once, in variables, instead of once per
        decode call (the small teacher's 8,000 x 256 table: 1.5 ms of every batch-1 call, a
        profile of its beam search). For a model whose weights no longer change, as restored
        for decoding (runs.restore_model); after assigning new weights call it again, or with
        keep=False to go back to laying the table out per call."""
        object.__setattr__(self, "_kept", None)  # past Keras's tracking: not a model weight
        if keep and self.config.tie_output:
            kept = {k: tf.Variable(v, trainable=False, name=f"decoding_{k}")
                    for k, v in self.decoding_constants().items()}
            object.__setattr__(self, "_kept", kept)

    def kept_variables(self):
        """{name: variable} of keep_decoding_constants (empty without), for SavedModels."""
        return dict(self._kept or {})

    def pass_constants(self, vocab_ids=None):
        """decoding_constants for one parallel pass (NAT, rescoring, mask-predict, Skip-CMLM)
        when they change its projection (a shortlist, the int8 table) or are kept; else None
        (the table is read as it is, once)."""
        if vocab_ids is None and not self.int8_output and self._kept is None:
            return None
        return self.decoding_constants(vocab_ids)

    def call(self, inputs, training=False):
        """inputs {"source": [B, S], "target": [B, T]} -> logits [B, T, V] (teacher forcing)."""
        encoded, source_mask = self.encode(inputs["source"], training=training)
        return self.decode(shift_right(inputs["target"]), encoded, source_mask, training=training)
