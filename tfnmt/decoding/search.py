"""Greedy and beam search, generic over any model with the incremental decoding interface.

A model provides `initial_state(source, max_length) -> {"cache", "memory"}` and
`step(ids [K*B], position, cache, memory) -> (logits [K*B, V], cache)` (a sentence's K
hypotheses are consecutive rows and share its memory row), and optionally
`decoding_constants() -> dict` (tensors computed once per call and added to `memory`) and
`expand_cache(cache, K)` / `reorder_cache(cache, origin [B, K], position)` (by default the
cache holds a row per hypothesis and beam search gathers the rows after every step; the
Transformer keeps its keys and values in place, see models.transformer). Both
searches are one tf.while_loop over static shapes (fixed max_length, fixed beam), so they trace
once per input shape and compile under XLA. keras-hub's BeamSampler is not used: it has no
length penalty and keeps scoring beams after EOS.
"""

import tensorflow as tf

from tfnmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from tfnmt.decoding.common import (length_limits, length_penalty, NEG, output_tokens,
                                   sequence_lengths, step_bias, token_biases, traced_alike)


def greedy_search(model, source, max_length, limits, min_length=0, vocab_ids=None):
    """Arg-max decoding. Returns ids [B, L] (PAD after EOS), lengths [B], scores [B] (total
    log-probability; selection, the same).
    No hypothesis ends before min_length tokens (EOS included). With `vocab_ids` [N] (a
    shortlist), only those ids are scored (the softmax runs over them)."""
    state = model.initial_state(source, max_length)
    batch = _batch_size(source)
    memory = step_memory(model, state["memory"], vocab_ids)

    def body(i, ids, prev, scores, finished, cache):
        logits, cache = model.step(prev, i, cache, memory)
        logits = tf.cast(logits, tf.float32)
        # The arg-max and its log-probability without a [B, V] log-softmax.
        bias = step_bias(token_biases(output_tokens(logits, vocab_ids)), i >= limits - 1,
                         i < min_length - 1)
        index = tf.argmax(logits + bias, axis=-1, output_type=tf.int32)
        token_logp = (tf.gather(logits, index, batch_dims=1) -
                      tf.reduce_logsumexp(logits, axis=-1))
        token = index if vocab_ids is None else tf.gather(vocab_ids, index)
        token = tf.where(finished, PAD_ID, token)
        scores += tf.where(finished, 0.0, token_logp)
        ids = tf.where(tf.range(max_length)[None, :] == i, token[:, None], ids)
        return i + 1, ids, token, scores, finished | (token == EOS_ID), cache

    def cond(i, ids, prev, scores, finished, cache):
        return tf.logical_and(i < max_length, tf.logical_not(tf.reduce_all(finished)))

    _, ids, _, scores, _, _ = tf.while_loop(
        traced_alike(cond), traced_alike(body),
        (tf.constant(0), tf.zeros([batch, max_length], tf.int32), tf.fill([batch], BOS_ID),
         tf.zeros([batch]), tf.zeros([batch], tf.bool), state["cache"]))
    return {"ids": ids, "lengths": sequence_lengths(ids), "scores": scores, "selection": scores}


def _batch_size(source):
    """Static batch size when known (keeps while_loop shapes fixed), else dynamic."""
    return source.shape[0] if source.shape[0] is not None else tf.shape(source)[0]


def expand_cache(model, cache, beam_size):
    """The cache for beam_size hypotheses a sentence: the model's expand_cache, else a row per
    hypothesis (a sentence's rows consecutive)."""
    if hasattr(model, "expand_cache"):
        return model.expand_cache(cache, beam_size)
    return tf.nest.map_structure(lambda t: tf.repeat(t, beam_size, axis=0), cache)


def reorder_cache(model, cache, origin, position):
    """Hypothesis j of sentence b continues hypothesis origin[b, j] [B, K] after step
    `position`: the model's reorder_cache, else the rows gathered."""
    if hasattr(model, "reorder_cache"):
        return model.reorder_cache(cache, origin, position)
    batch, beam = tf.shape(origin)[0], origin.shape[1]
    rows = tf.reshape(origin + beam * tf.range(batch)[:, None], [-1])
    return tf.nest.map_structure(lambda t: tf.gather(t, rows), cache)


def step_memory(model, memory, vocab_ids=None):
    """The per-sentence memory plus the model's per-call decoding constants (for the shortlist
    `vocab_ids` when given)."""
    if not hasattr(model, "decoding_constants"):
        return memory
    constants = (model.decoding_constants() if vocab_ids is None else
                 model.decoding_constants(vocab_ids))
    return dict(memory, **constants) if constants else memory


def _top_k_gather(k, scores, *tensors):
    """Top-k along axis 1 of scores [B, N]; gathers each tensor [B, N, ...] the same way."""
    top, index = tf.math.top_k(scores, k=k)
    return (top, index) + tuple(tf.gather(t, index, batch_dims=1) for t in tensors)


def beam_search(model, source, max_length, limits, beam_size, alpha=0.0, min_length=0,
                vocab_ids=None):
    """Beam search with the GNMT length penalty, finished hypotheses kept apart from alive ones.

    Returns ids [B, K, L] (PAD after EOS), lengths [B, K], scores [B, K] = log P(Y | X) and
    selection [B, K] = log P / lp(|Y|), best (highest selection) first. Stops early only when no alive beam can still beat the
    worst of K finished hypotheses. `vocab_ids` as in greedy_search.
    """
    k = beam_size
    batch = _batch_size(source)
    state = model.initial_state(source, max_length)
    memory = step_memory(model, state["memory"], vocab_ids)  # once per sentence: grouped queries
    cache = expand_cache(model, state["cache"], k)
    best_possible_lp = length_penalty(limits, alpha)  # the largest lp an alive beam can reach
    positions = tf.range(max_length)

    def body(i, alive_ids, alive_logp, fin_ids, fin_scores, fin_logp, cache):
        prev = tf.reshape(tf.where(i == 0, BOS_ID, tf.gather(alive_ids, tf.maximum(i - 1, 0),
                                                               axis=2)), [-1])
        logits, cache = model.step(prev, i, cache, memory)
        vocab = tf.shape(logits)[-1]
        log_probs = tf.reshape(tf.nn.log_softmax(tf.cast(logits, tf.float32)), [batch, k, vocab])
        bias = step_bias(token_biases(output_tokens(logits, vocab_ids)), i >= limits - 1,
                         i < min_length - 1)[:, None]
        candidates = tf.reshape(alive_logp[:, :, None] + log_probs + bias, [batch, k * vocab])
        cand_logp, flat = tf.math.top_k(candidates, k=2 * k)
        origin, token = flat // vocab, flat % vocab
        if vocab_ids is not None:
            token = tf.gather(vocab_ids, token)
        cand_ids = tf.gather(alive_ids, origin, batch_dims=1)
        cand_ids = tf.where(positions[None, None, :] == i, token[:, :, None], cand_ids)
        is_eos = token == EOS_ID

        # Alive: the best k candidates that did not end.
        alive_logp, _, alive_ids, origin = _top_k_gather(
            k, tf.where(is_eos, NEG, cand_logp), cand_ids, origin)
        cache = reorder_cache(model, cache, origin, i)

        # Finished: candidates that end here and rank in the top k (as fairseq does, so beam 1
        # is greedy search), merged with the ones kept so far.
        ends = is_eos & (tf.range(2 * k) < k)[None, :]
        new_scores = tf.where(ends, cand_logp / length_penalty(i + 1, alpha), NEG)
        new_scores = tf.where(cand_logp > NEG / 2, new_scores, NEG)
        fin_scores, _, fin_ids, fin_logp = _top_k_gather(
            k, tf.concat([fin_scores, new_scores], 1), tf.concat([fin_ids, cand_ids], 1),
            tf.concat([fin_logp, cand_logp], 1))
        return i + 1, alive_ids, alive_logp, fin_ids, fin_scores, fin_logp, cache

    def cond(i, alive_ids, alive_logp, fin_ids, fin_scores, fin_logp, cache):
        best_alive = alive_logp[:, 0] / best_possible_lp
        worst_finished = tf.reduce_min(fin_scores, axis=1)
        done = (worst_finished > NEG / 2) & (worst_finished >= best_alive)
        done |= alive_logp[:, 0] <= NEG / 2
        return tf.logical_and(i < max_length, tf.logical_not(tf.reduce_all(done)))

    init_logp = tf.tile(tf.concat([[0.0], tf.fill([k - 1], NEG)], 0)[None], [batch, 1])
    empty_ids = tf.zeros([batch, k, max_length], tf.int32)
    _, alive_ids, alive_logp, fin_ids, fin_scores, fin_logp, _ = tf.while_loop(
        traced_alike(cond), traced_alike(body),
        (tf.constant(0), empty_ids, init_logp, empty_ids, tf.fill([batch, k], NEG),
         tf.fill([batch, k], NEG), cache))

    # A sentence with fewer than k finished hypotheses falls back on its alive ones.
    has_finished = fin_scores > NEG / 2
    alive_scores = alive_logp / length_penalty(max_length, alpha)
    ids = tf.where(has_finished[:, :, None], fin_ids, alive_ids)
    lengths = sequence_lengths(ids)
    ids = tf.where(positions[None, None, :] < lengths[:, :, None], ids, PAD_ID)
    return {"ids": ids, "lengths": lengths,
            "scores": tf.where(has_finished, fin_logp, alive_logp),
            "selection": tf.where(has_finished, fin_scores, alive_scores)}


def decode(model, source, max_length, beam_size=1, alpha=0.0, max_length_a=1.5,
           max_length_b=10, min_length=0, vocab_ids=None):
    """Greedy (beam_size 1) or beam search; outputs have a beam axis [B, K, ...]. `vocab_ids`
    [N]: decode over this shortlist of target ids only."""
    limits = length_limits(source, max_length, max_length_a, max_length_b)
    if beam_size == 1:
        out = greedy_search(model, source, max_length, limits, min_length, vocab_ids)
        return tf.nest.map_structure(lambda t: t[:, None], out)
    return beam_search(model, source, max_length, limits, beam_size, alpha, min_length,
                       vocab_ids)
