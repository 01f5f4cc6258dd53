"""Hybrid-Regressive Translation (HRT paper, Sec. 5): one Transformer decoder used two ways.

Skip-AT (causal mask) generates z_i = y_{ik} from [BOS_k] with positions 0, k, 2k, ...;
Skip-CMLM (no causal mask) then fills the k-1 [MASK]s placed before every z_i in one pass.
No parameters beyond the Transformer's; [MASK] and [BOS_k] are reserved vocabulary ids.
"""

import tensorflow as tf

from tfnmt import decoding
from tfnmt.data.tokenizer import BOS_ID, PAD_ID


def bidirectional_mask(decoder_input):
    """[B, 1, T]: every position attends to every real (non-PAD) position."""
    return (decoder_input != PAD_ID)[:, None, :]


class SkipAT:
    """The decoding interface of the Skip-AT decoder over a Transformer (shared beam search).

    Step i feeds [BOS_k] at i = 0, uses cache slot i and position encoding i * k. The encoder
    output is kept for the Skip-CMLM stage of the same call.
    """

    def __init__(self, model, k, bos_k_id):
        self.model, self.k, self.bos_k_id = model, k, bos_k_id
        self.encoded = None

    def initial_state(self, source, max_length):
        self.encoded = self.model.encode(source)
        return self.model.state_from_encoding(*self.encoded, max_length)

    def decoding_constants(self):
        return self.model.decoding_constants()

    def step(self, ids, position, cache, memory):
        ids = tf.where(ids == BOS_ID, self.bos_k_id, ids)
        return self.model.step(ids, position, cache, memory, embedding_position=position * self.k)


def skip_cmlm_input(z, k, mask_id):
    """z [N, m] (PAD after EOS) -> y_nat [N, m*k]: k-1 [MASK]s before every z_i; positions."""
    n, m = tf.shape(z)[0], tf.shape(z)[1]
    blocks = tf.concat([tf.fill([n, m, k - 1], mask_id), z[:, :, None]], axis=2)
    real = tf.repeat(z != PAD_ID, k, axis=1)
    y_nat = tf.where(real, tf.reshape(blocks, [n, m * k]), PAD_ID)
    positions = tf.broadcast_to(tf.range(1, m * k + 1)[None], tf.shape(y_nat))
    return y_nat, positions


def predict_masks(model, tokens, positions, encoded, source_mask, mask_id, lengths=None):
    """One bidirectional decoder pass: for every position, the best token that is not PAD, BOS
    or [MASK], and its log-probability (Skip-CMLM and mask-predict both use it). With
    `lengths` [R] (EOS included) EOS goes exactly at position N - 1 (fixed_length_allowed).
    `encoded` and `source_mask` may have one row per sentence for several token rows each."""
    logits = model.decode(tokens, encoded, source_mask, self_mask=bidirectional_mask(tokens),
                          positions=positions)
    vocab = logits.shape[-1]
    if lengths is not None:
        allowed = decoding.fixed_length_allowed(lengths, tf.shape(tokens)[1], vocab,
                                                banned=(mask_id,))
    else:
        words = tf.range(vocab)
        allowed = ~((words == PAD_ID) | (words == BOS_ID) | (words == mask_id))
    return decoding.best_tokens(logits, allowed)


def skip_cmlm_fill(model, y_nat, positions, encoded, source_mask, mask_id):
    """One Skip-CMLM pass: every [MASK] replaced by its arg-max; returns (filled ids, sum of the
    log-probabilities of the filled tokens) per row."""
    predicted, log_prob = predict_masks(model, y_nat, positions, encoded, source_mask, mask_id)
    is_mask = y_nat == mask_id
    return (tf.where(is_mask, predicted, y_nat),
            tf.reduce_sum(tf.where(is_mask, log_prob, 0.0), axis=1))


def hybrid_regressive_decode(model, source, max_length, k, mask_id, bos_k_id, beam_size=5,
                             n_nat=1, alpha=0.0, max_length_a=1.5, max_length_b=10):
    """Two-stage HRT inference: Skip-AT beam search (beam_size), Skip-CMLM on the top n_nat
    hypotheses, truncation at the first EOS, choice by Eq. 3 of the HRT paper.

    Returns ids [B, 1, L] (L = k * ceil(max_length / k)), lengths [B, 1], scores [B, 1] (Eq. 3)
    and, for the chosen hypothesis, its Skip-AT ids z [B, 1, m] and the two terms of Eq. 3.
    """
    skip = SkipAT(model, k, bos_k_id)
    skip_length = -(-max_length // k)
    limits = decoding.length_limits(source, max_length, max_length_a, max_length_b)
    beams = decoding.beam_search(skip, source, skip_length, -(-limits // k), beam_size, alpha)
    encoded, source_mask = skip.encoded
    batch = tf.shape(source)[0]
    z = tf.reshape(beams["ids"][:, :n_nat], [batch * n_nat, skip_length])
    y_nat, positions = skip_cmlm_input(z, k, mask_id)
    filled, cmlm_score = skip_cmlm_fill(model, y_nat, positions, encoded, source_mask, mask_id)
    skip_score = tf.reshape(beams["log_probs"][:, :n_nat], [-1])
    scores = skip_score + cmlm_score                                               # Eq. 3
    lengths = decoding._sequence_lengths(filled)
    filled = tf.where(tf.range(skip_length * k)[None] < lengths[:, None], filled, PAD_ID)
    best = tf.argmax(tf.reshape(scores, [batch, n_nat]), axis=1, output_type=tf.int32)

    def pick(t):  # the best of each sentence's n_nat candidates, with a beam axis of 1
        per_sentence = tf.reshape(t, tf.concat([[batch, n_nat], tf.shape(t)[1:]], 0))
        return tf.gather(per_sentence, best, batch_dims=1)[:, None]

    return {"ids": pick(filled), "lengths": pick(lengths), "scores": pick(scores),
            "skip_ids": pick(z), "skip_at_score": pick(skip_score),
            "skip_cmlm_score": pick(cmlm_score)}
