"""Non-autoregressive Transformer (hint-based NART paper, Sec. 2; Gu et al. 2017), and the
pieces every NAT model shares: copying source representations into decoder inputs, decoding
several target lengths in one batch, and rescoring the candidates with an AT model.

The decoder sees no causal mask; its input for target position t is the source embedding at
position round(t M / N) (uniform copy); each layer adds positional attention.
"""

import keras_hub
import tensorflow as tf

from tfnmt.data.tokenizer import PAD_ID
from tfnmt.decoding import best_of_candidates, best_tokens, fixed_length_allowed
from tfnmt.layers.nat_decoder import NATDecoderLayer, nat_self_mask
from tfnmt.models.base import shift_right
from tfnmt.models.transformer import Transformer


def lengths_of(ids):
    """[B, T] ids -> [B] number of non-PAD tokens."""
    return tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32), axis=1)


def uniform_copy_indices(source_lengths, target_lengths, width):
    """[B, width] source positions: target position t < N copies round(t M / N) (Gu et al.
    2017; SPEC.md; halves round up), at most M - 1; positions t >= N get 0 (padding)."""
    t = tf.cast(tf.range(width), tf.float32)[None]
    m = tf.cast(source_lengths, tf.float32)[:, None]
    n = tf.cast(target_lengths, tf.float32)[:, None]
    index = tf.cast(tf.floor(t * m / tf.maximum(n, 1.0) + 0.5), tf.int32)
    index = tf.minimum(index, tf.cast(m, tf.int32) - 1)
    return tf.where(t < n, tf.maximum(index, 0), 0)


def measure_length_offset(data):
    """Mean (target tokens - source tokens) over the training pairs, EOS excluded on both."""
    from tfnmt.data import corpus
    from tfnmt.data.tokenizer import load_tokenizer

    sides, count = [], 1
    for path, vocab in ((data.train_source, data.source_vocab),
                        (data.train_target, data.target_vocab or data.source_vocab)):
        tokenizer, lines = load_tokenizer(vocab), corpus.read_lines(path)
        sides.append(sum(int(tf.reduce_sum(tokenizer.tokenize(tf.constant(
            lines[i:i + 4096])).row_lengths())) for i in range(0, len(lines), 4096)))
        count = max(len(lines), 1)
    return round((sides[1] - sides[0]) / count, 4)


class NART(Transformer):
    """Encoder as the Transformer's; decoder layers are NATDecoderLayers. Training: call() on
    {"source", "target"} returns logits for every target position (no shift)."""

    decoder_layer_class = NATDecoderLayer

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.position_encoding = keras_hub.layers.SinePositionEncoding(name="nat_positions")

    def decoder_inputs(self, source, encoded, source_mask, target_lengths, width,
                       training=False):
        """Uniform copy of the source token embeddings (+ target position encodings)."""
        del encoded
        index = uniform_copy_indices(lengths_of(source), target_lengths, width)
        return self.source_embedder(tf.gather(source, index, batch_dims=1), training=training)

    def nat_decode(self, source, encoded, source_mask, target_lengths, width, training=False,
                   return_internals=False):
        """One parallel pass for targets of `target_lengths` [R] padded to `width` -> logits
        [R, width, V] (and {"hidden", "attention"} per layer as Transformer.decode). `source`
        [R, S] has a row per target; `encoded` and `source_mask` may have one per sentence
        instead (R = c * B, a sentence's c targets consecutive)."""
        x = self.decoder_inputs(source, encoded, source_mask, target_lengths, width, training)
        target_mask = tf.range(width)[None] < target_lengths[:, None]
        self_mask = nat_self_mask(target_mask, self.config.nat_attend_self)
        positions = self.position_encoding(x)
        memory_mask = source_mask[:, None, :]
        internals = {"hidden": [], "attention": [], "policy": []}
        for i, layer in enumerate(self.decoder_layers):
            x, policy = self.layer_input(i, x)
            x, probs = self.run_layer(layer, x, positions, layer.project_memory(encoded),
                                      memory_mask, self_mask, training)
            internals["hidden"].append(x)
            internals["attention"].append(probs)
            internals["policy"].append(policy)
        logits = self.logits(x)
        return (logits, internals) if return_internals else logits

    def run_layer(self, layer, x, positions, memory_kv, memory_mask, self_mask, training):
        return layer(x, positions, memory_kv, memory_mask, self_mask, training=training)

    def predicted_lengths(self, source, encoded, source_mask):
        """[B] N = M + C: the source length plus the training data's mean difference."""
        del encoded, source_mask
        return lengths_of(source) + int(round(self.config.length_offset))

    def length_bound(self, source_width, halfwidth):
        """The longest candidate a source batch `source_width` tokens wide can get, M + C + B
        with M <= width: NAT decoding pads to this instead of the decode limit (the output
        projection over the padding is most of a NAT pass on CPU)."""
        return source_width + max(int(round(self.config.length_offset)), 0) + halfwidth

    def call(self, inputs, training=False, return_internals=False):
        source, target = inputs["source"], inputs["target"]
        encoded, source_mask = self.encode(source, training=training)
        return self.nat_decode(source, encoded, source_mask, lengths_of(target),
                               tf.shape(target)[1], training, return_internals)


def candidate_lengths(centers, halfwidth, max_length):
    """[B, 2B+1] distinct target lengths: center - B .. center + B, the window moved up or down
    to lie within [2, max_length] (a translation is at least one token and EOS), so no two
    candidates of a sentence are the same length unless max_length leaves too few."""
    start = tf.clip_by_value(centers - halfwidth, 2, tf.maximum(max_length - 2 * halfwidth, 2))
    return tf.minimum(start[:, None] + tf.range(2 * halfwidth + 1)[None], max_length)


def argmax_fill(logits, lengths):
    """Per position the best token that is not PAD, BOS or EOS, then EOS at position N - 1 and
    PAD after it: (ids [R, W], log-probabilities of the chosen tokens [R, W], 0 on padding)."""
    width, vocab = tf.shape(logits)[1], logits.shape[-1]
    ids, token_logp = best_tokens(logits, fixed_length_allowed(lengths, width, vocab))
    real = tf.range(width)[None] < lengths[:, None]
    return tf.where(real, ids, PAD_ID), tf.where(real, token_logp, 0.0)


def teacher_scores(teacher, source, candidates):
    """Total log P_teacher(candidate | source) in ONE teacher-forced pass over all candidates:
    source [B, S] encoded once (its keys and values shared by a sentence's candidates),
    candidates [B * c, W] (a sentence's consecutive; ending with EOS, PAD after) -> [B * c]."""
    encoded, source_mask = teacher.encode(source)
    logits = tf.cast(teacher.decode(shift_right(candidates), encoded, source_mask), tf.float32)
    token_logp = (tf.gather(logits, candidates, batch_dims=2) -
                  tf.reduce_logsumexp(logits, axis=-1))
    real = candidates != PAD_ID
    return tf.reduce_sum(tf.where(real, token_logp, 0.0), axis=1)


SELECTIONS = ("normalized", "total")


def nat_translate(model, source, max_length, halfwidth=0, rescorer=None, selection="normalized"):
    """Length-parallel NAT decoding: for each sentence the 2B+1 lengths around the model's
    predicted length (M + C, or a length classifier's choice; B = halfwidth) decoded as one
    batch, each position its arg-max. Each candidate's score is its total log-probability
    under the AT `rescorer` (one teacher-forced pass) when given, else under the NAT itself;
    the candidate with the best score wins, divided by its length first when `selection` is
    "normalized" ("total": the hint paper's highest probability).

    Returns ids [B, 1, W], lengths [B, 1], scores [B, 1] (total log-probability); W is
    max_length, or less when the model bounds its candidates' lengths (length_bound).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    bound = model.length_bound(tf.shape(source)[1], halfwidth)
    if bound is not None:
        max_length = tf.minimum(max_length, bound)
    encoded, source_mask = model.encode(source)
    batch, count = tf.shape(source)[0], 2 * halfwidth + 1
    centers = model.predicted_lengths(source, encoded, source_mask)
    lengths = tf.reshape(candidate_lengths(centers, halfwidth, max_length), [-1])
    # One row per candidate; the encoder output stays one row per sentence (grouped attention).
    logits = model.nat_decode(tf.repeat(source, count, axis=0), encoded, source_mask, lengths,
                              max_length)
    ids, token_logp = argmax_fill(logits, lengths)
    if rescorer is not None and count > 1:
        scores = teacher_scores(rescorer, source, ids)
    else:
        scores = tf.reduce_sum(token_logp, axis=1)
    chosen = scores / tf.cast(lengths, tf.float32) if selection == "normalized" else scores
    return best_of_candidates(chosen, {"ids": ids, "lengths": lengths, "scores": scores}, batch,
                              count)
