"""Iterative fills of a bidirectional decoder: Hybrid-Regressive Translation's two stages
(HRT paper, Sec. 5) and CMLM's mask-predict (Ghazvininejad et al. 2019).

HRT uses one Transformer decoder two ways: Skip-AT (causal mask) generates z_i = y_{ik} from
[BOS_k] with positions 0, k, 2k, ...; Skip-CMLM (no causal mask) then fills the k-1 [MASK]s
placed before every z_i in one pass. No parameters beyond the Transformer's; [MASK] and
[BOS_k] are reserved vocabulary ids. Mask-predict starts from L [MASK]s and re-predicts the
least confident tokens.
"""

import tensorflow as tf

from tfnmt.data.sequences import row_ranks
from tfnmt.data.tokenizer import BOS_ID, PAD_ID
from tfnmt.decoding import common, search
from tfnmt.decoding.common import best_of_candidates, NEG


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
        self.encoded = self.memory_kv = None

    def initial_state(self, source, max_length):
        self.encoded = self.model.encode(source)
        state = self.model.state_from_encoding(*self.encoded, max_length)
        self.memory_kv = state["memory"]["kv"]  # Skip-CMLM reuses the keys and values
        return state

    def decoding_constants(self, vocab_ids=None):
        return self.model.decoding_constants(vocab_ids)

    def expand_cache(self, cache, beam_size):
        return self.model.expand_cache(cache, beam_size)

    def reorder_cache(self, cache, origin, position):
        return self.model.reorder_cache(cache, origin, position)

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


def predict_masks(model, tokens, positions, self_mask, last, encoded, source_mask, mask_id,
                  memory_kv=None, slots=None, constants=None):
    """One bidirectional decoder pass of mask-predict over rows of packed candidates: for
    every position the best token that is not PAD, BOS or [MASK], with EOS exactly at a
    candidate's last position (`last` [R, W] bool; common.allowed_where_last), and its
    log-probability. `self_mask` [R, W, W] keeps each candidate's attention inside it;
    `encoded` and `source_mask` have one row per token row; `memory_kv` are its keys/values
    when already projected, `constants` the model's pass_constants() (computed once for all
    passes). With `slots` (a Python int at least the number of [MASK]s in any row) only that
    many positions a row, its [MASK]s first, go through the vocabulary projection; the other
    positions' outputs are 0."""
    width = tf.shape(tokens)[1]
    at = None
    if slots is not None:  # the [MASK]s first (top_k: an argsort compiles badly under XLA)
        order = (tf.cast(tokens == mask_id, tf.float32) -
                 tf.cast(tf.range(width), tf.float32)[None] / tf.cast(width, tf.float32))
        at = tf.math.top_k(order, k=slots).indices                           # [R, slots]
        last = tf.gather(last, at, batch_dims=1)
    logits = model.decode(tokens, encoded, source_mask, self_mask=self_mask,
                          positions=positions, memory_kv=memory_kv,
                          outputs=None if at is None else
                          (lambda hidden: tf.gather(hidden, at, batch_dims=1)),
                          constants=constants)
    allowed = common.allowed_where_last(last, common.output_tokens(logits, None),
                                        banned=(mask_id,))
    ids, log_probs = common.best_tokens(logits, allowed)
    if at is None:
        return ids, log_probs
    rows = tf.shape(tokens)[0]
    index = tf.stack([tf.broadcast_to(tf.range(rows)[:, None], tf.shape(at)), at], axis=-1)
    return (tf.scatter_nd(index, ids, [rows, width]),
            tf.scatter_nd(index, log_probs, [rows, width]))


def fill_tokens(tokens, mask_id):
    """[V] bool over the ids `tokens` [V]: what a [MASK] may become (not PAD, BOS or [MASK])."""
    return ~common.never(tokens, (mask_id,))


def skip_cmlm_fill(model, y_nat, positions, encoded, source_mask, mask_id, k, memory_kv=None,
                   vocab_ids=None):
    """One Skip-CMLM pass: every [MASK] replaced by its arg-max; returns (filled ids, sum of the
    log-probabilities of the filled tokens) per row. Only the k - 1 [MASK] slots of every block
    go through the vocabulary projection; `memory_kv` are the Skip-AT stage's keys/values;
    with `vocab_ids` [N] (a shortlist) the fills are chosen among those ids."""
    rows, width = tf.shape(y_nat)[0], tf.shape(y_nat)[1]

    def mask_slots(hidden):  # [R, m*k, d] -> [R, m, k-1, d]
        return tf.reshape(hidden, [rows, width // k, k, hidden.shape[-1]])[:, :, : k - 1]

    constants = model.pass_constants(vocab_ids)
    logits = model.decode(y_nat, encoded, source_mask, self_mask=bidirectional_mask(y_nat),
                          positions=positions, memory_kv=memory_kv, outputs=mask_slots,
                          constants=constants)
    tokens = common.output_tokens(logits, vocab_ids)
    predicted, log_prob = common.best_tokens(logits, fill_tokens(tokens, mask_id))
    if vocab_ids is not None:
        predicted = tf.gather(vocab_ids, predicted)
    blocks = tf.reshape(y_nat, [rows, width // k, k])
    is_mask = blocks[:, :, : k - 1] == mask_id
    filled = tf.concat([tf.where(is_mask, predicted, blocks[:, :, : k - 1]), blocks[:, :, k - 1:]],
                       axis=2)
    return (tf.reshape(filled, [rows, width]),
            tf.reduce_sum(tf.where(is_mask, log_prob, 0.0), axis=[1, 2]))


def hybrid_regressive_decode(model, source, max_length, k, mask_id, bos_k_id, beam_size=5,
                             n_nat=1, alpha=0.0, max_length_a=1.5, max_length_b=10,
                             vocab_ids=None):
    """Two-stage HRT inference: Skip-AT beam search (beam_size), Skip-CMLM on the top n_nat
    hypotheses, truncation at the first EOS, choice by Eq. 3 of the HRT paper.

    Returns ids [B, 1, L] (L = k * ceil(max_length / k)), lengths [B, 1], scores [B, 1] (Eq. 3)
    and, for the chosen hypothesis, its Skip-AT ids z [B, 1, m] and the two terms of Eq. 3.
    When max_length is a Python int, the Skip-CMLM pass covers only as many Skip-AT positions
    as the longest z holds (bucketed; nothing after an EOS is filled), not the limit's.
    """
    skip = SkipAT(model, k, bos_k_id)
    skip_length = -(-max_length // k)
    limits = common.length_limits(source, max_length, max_length_a, max_length_b)
    beams = search.beam_search(skip, source, skip_length, -(-limits // k), beam_size, alpha,
                               vocab_ids=vocab_ids)
    encoded, source_mask = skip.encoded
    batch = tf.shape(source)[0]
    z = tf.reshape(beams["ids"][:, :n_nat], [batch * n_nat, skip_length])

    def fill(m):
        """Skip-CMLM over the first m Skip-AT positions, padded back to skip_length * k."""
        y_nat, positions = skip_cmlm_input(z[:, :m], k, mask_id)
        filled, score = skip_cmlm_fill(model, y_nat, positions, encoded, source_mask, mask_id,
                                       k, skip.memory_kv, vocab_ids)
        return tf.pad(filled, [[0, 0], [0, (skip_length - m) * k]], constant_values=PAD_ID), score

    if isinstance(max_length, int):  # the fill as wide as the longest z (a branch per bucket)
        options = sorted({-(-w // k) for w in common.bucket_widths(model.config.max_length,
                                                                   max_length)})
        filled, cmlm_score = common.narrowest(options, tf.reduce_max(common.sequence_lengths(z)),
                                              fill)
    else:
        filled, cmlm_score = fill(skip_length)
    skip_score = tf.reshape(beams["scores"][:, :n_nat], [-1])
    scores = skip_score + cmlm_score                                               # Eq. 3
    lengths = common.sequence_lengths(filled)
    filled = tf.where(tf.range(skip_length * k)[None] < lengths[:, None], filled, PAD_ID)
    return common.best_of_candidates(
        scores, {"ids": filled, "lengths": lengths, "scores": scores, "skip_ids": z,
                 "skip_at_score": skip_score, "skip_cmlm_score": cmlm_score}, batch, n_nat)


def mask_predict_lengths(model, source, length_beam, width):
    """Mask-predict's first stage: the encoder output and mask, and for every sentence its
    length_beam most likely lengths L >= 2 (EOS included, at most `width`) -> (encoded,
    source_mask, lengths [B, l])."""
    encoded, source_mask = model.encode(source)
    batch = tf.shape(source)[0]
    length_logp = tf.nn.log_softmax(tf.cast(model.length_logits(encoded, source_mask),
                                            tf.float32)[:, : width + 1])
    # L counts EOS: at least one token and EOS.
    length_logp = tf.concat([tf.fill([batch, 2], NEG), length_logp[:, 2:]], axis=1)
    _, lengths = tf.math.top_k(length_logp, k=length_beam)               # [B, l]
    return encoded, source_mask, tf.maximum(lengths, 2)


def packed_widths(limit):
    """The widths a row of packed candidates may narrow to, up to `limit` (a Python int):
    multiples of 16 up to 128, then steps of about 1.25x, then the limit."""
    widths, width = [], 16
    while width < limit:
        widths.append(width)
        width = width + 16 if width < 128 else int(width * 1.25) // 16 * 16
    return widths + [limit]


def mask_predict_widths(length_beam, max_length):
    """The widths mask-predict's packed rows may run at under a static decode limit."""
    return packed_widths(length_beam * max_length)


def mask_predict_fill(model, encoded, source_mask, lengths, mask_id, iterations, w):
    """Mask-predict's iterations, a sentence's candidates (`lengths` [B, l]) one after another
    in one row of w positions (w >= the longest sum of a sentence's lengths): positions from
    1 in each, self-attention within each, the encoder output once per sentence (its keys
    and values projected once for every iteration) -> (tokens, log-probabilities) [B, w]."""
    batch = tf.shape(lengths)[0]
    starts = tf.cumsum(lengths, axis=1, exclusive=True)                  # [B, l]
    totals = tf.reduce_sum(lengths, axis=1)                              # [B]
    memory_kv = [layer.project_memory(encoded) for layer in model.decoder_layers]
    constants = model.pass_constants()
    j = tf.range(w)
    real = j[None] < totals[:, None]                                     # [B, w]
    segment = tf.reduce_sum(tf.cast(starts[:, None, :] <= j[None, :, None], tf.int32),
                            axis=2) - 1                                  # candidate, [B, w]
    positions = j[None] - tf.gather(starts, segment, batch_dims=1) + 1
    length = tf.gather(lengths, segment, batch_dims=1)
    last = real & (positions == length)
    segment = tf.where(real, segment, -1)                                # padding: apart
    self_mask = ((segment[:, :, None] == segment[:, None, :]) | ~real[:, :, None]) & \
        real[:, None, :]                                                 # [B, w, w]
    tokens = tf.where(real, mask_id, PAD_ID)
    probs = tf.zeros([batch, w])
    for t in range(iterations):
        masked = tokens == mask_id
        # After the first pass a row holds sum(L (I - t) / I) <= w (I - t) / I [MASK]s.
        slots = w * (iterations - t) // iterations if t > 0 and isinstance(w, int) else None
        predicted, confidence = predict_masks(model, tokens, positions, self_mask, last,
                                              encoded, source_mask, mask_id, memory_kv, slots,
                                              constants)
        tokens = tf.where(masked, predicted, tokens)
        probs = tf.where(masked, confidence, probs)
        if t == iterations - 1:
            break
        n = length * (iterations - 1 - t) // iterations                  # to re-mask
        rank = row_ranks(probs, segment)
        tokens = tf.where(real & (rank < n), mask_id, tokens)
    return tokens, probs


def mask_predict_choice(tokens, probs, lengths, width):
    """Packed rows [B, w] back to a row of `width` per candidate, and per sentence the
    candidate of best mean log-probability over its L positions."""
    batch, length_beam = tf.shape(lengths)[0], lengths.shape[1]
    starts = tf.cumsum(lengths, axis=1, exclusive=True)
    at = starts[:, :, None] + tf.range(width)[None, None]                # [B, l, W]
    inside = tf.range(width)[None, None] < lengths[:, :, None]
    at = tf.minimum(at, tf.shape(tokens)[1] - 1)
    tokens = tf.reshape(tf.where(inside, tf.gather(tokens, at, batch_dims=1), PAD_ID),
                        [-1, width])
    probs = tf.reshape(tf.where(inside, tf.gather(probs, at, batch_dims=1), 0.0), [-1, width])
    lengths = tf.reshape(lengths, [-1])                                  # [B*l]
    total = tf.reduce_sum(probs, 1)
    mean_logp = total / tf.cast(lengths, tf.float32)
    return best_of_candidates(mean_logp, {"ids": tokens, "lengths": lengths, "scores": total,
                                          "selection": mean_logp}, batch, length_beam)


def mask_predict(model, source, mask_id, iterations=10, length_beam=5, max_length=None):
    """Mask-predict: for the length_beam most likely lengths L >= 2 (EOS included), start from
    L [MASK]s, then for t = 1 .. I-1 re-mask the n = L (I - t) / I least confident tokens and
    predict them again; every prediction puts EOS at position L and nowhere else
    (common.allowed_where_last). The candidate with the best mean log-probability over its L
    positions wins.

    Returns ids [B, 1, W] (W = max_length), lengths [B, 1], scores [B, 1] (total log-probability)
    and selection [B, 1] (its mean over the L positions).

    A sentence's candidates run packed, one after another in one row (mask_predict_fill), so
    the passes compute little padding. When max_length is a Python int (a static limit, as
    under XLA), the rows are as wide as the smallest of packed_widths that holds the batch's
    longest sum of lengths (a branch per width), and each pass after the first projects only
    the positions it re-predicts: the same outputs for less work. The translator runs the
    stages as programs of their own instead (inference.translator.StagedMaskPredict), so that
    only the widths a file needs compile.
    """
    width = model.config.max_length if max_length is None else max_length
    encoded, source_mask, lengths = mask_predict_lengths(model, source, length_beam, width)

    def fill(w):
        return mask_predict_fill(model, encoded, source_mask, lengths, mask_id, iterations, w)

    if isinstance(width, int):
        tokens, probs = common.narrowest(mask_predict_widths(length_beam, width),
                                         tf.reduce_max(tf.reduce_sum(lengths, 1)), fill)
    else:
        tokens, probs = fill(length_beam * width)
    return mask_predict_choice(tokens, probs, lengths, width)
