"""Greedy and beam search, generic over any model with the incremental decoding interface.

A model provides `initial_state(source, max_length) -> {"cache", "memory"}` and
`step(ids [K*B], position, cache, memory) -> (logits [K*B, V], cache)` (the cache holds a row
per hypothesis, the memory one per sentence: a sentence's K hypotheses are consecutive rows and
share its memory row), and optionally
`decoding_constants() -> dict` (tensors computed once per call and added to `memory`). Both
searches are one tf.while_loop over static shapes (fixed max_length, fixed beam), so they trace
once per input shape and compile under XLA. keras-hub's BeamSampler is not used: it has no
length penalty and keeps scoring beams after EOS.
"""

import tensorflow as tf

from tfnmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

NEG = -1e9  # score of an impossible hypothesis (finite: no inf - inf = NaN)


def length_penalty(length, alpha):
    """GNMT length penalty ((5 + |Y|) / 6) ** alpha (Wu et al. 2016, Eq. 14); |Y| counts EOS."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def length_limits(source, max_length, a, b):
    """Per-sentence output limit min(floor(a * |x| + b), max_length); |x| counts source EOS."""
    source_length = tf.reduce_sum(tf.cast(source != PAD_ID, tf.float32), axis=1)
    return tf.minimum(tf.cast(a * source_length + b, tf.int32), max_length)


def token_biases(tokens):
    """What a decode loop adds to a step's log-probabilities over `tokens` [V] (the ids the
    logits stand for: range(V), or a shortlist), loop-invariant: [3, V] rows "normal"
    (PAD and BOS never), "no EOS" (before the minimum length) and "EOS only" (a hypothesis cut
    at the length limit pays log P(EOS), as in fairseq)."""
    never = (tokens == PAD_ID) | (tokens == BOS_ID)
    normal = tf.where(never, NEG, 0.0)
    return tf.stack([normal, tf.where(tokens == EOS_ID, NEG, normal),
                     tf.where(tokens == EOS_ID, 0.0, NEG)])


def step_bias(biases, force_eos, forbid_eos):
    """force_eos [B] bool, forbid_eos a scalar bool -> the bias [B, V] of this step."""
    row = tf.where(forbid_eos, biases[1], biases[0])
    return tf.where(force_eos[:, None], biases[2][None], row[None])


def best_tokens(logits, allowed):
    """The arg-max over allowed tokens and its log-probability under the full softmax, without
    a log-softmax materialised: logits [..., V], allowed bool broadcastable to them ->
    (ids [...], log-probabilities [...])."""
    logits = tf.cast(logits, tf.float32)
    ids = tf.argmax(tf.where(allowed, logits, NEG), axis=-1, output_type=tf.int32)
    chosen = tf.gather(logits, ids, batch_dims=ids.shape.rank)
    return ids, chosen - tf.reduce_logsumexp(logits, axis=-1)


def fixed_length_allowed(lengths, width, vocab_size, banned=()):
    """The one rule of every parallel (non-autoregressive) decoder that fills a candidate of a
    known length N (EOS included): [R, W, V] bool, EOS allowed only at position N - 1 and
    nothing else there; PAD, BOS and the `banned` ids never."""
    last = (tf.range(width)[None] == lengths[:, None] - 1)[:, :, None]      # [R, W, 1]
    words = tf.range(vocab_size)
    never = (words == PAD_ID) | (words == BOS_ID)
    for token in banned:
        never |= words == token
    is_eos = words == EOS_ID
    return tf.where(last, is_eos, ~(never | is_eos))


def best_of_candidates(selection, tensors, batch, per_sentence):
    """For each sentence the candidate with the highest selection score (the first of equals);
    every tensor [B*c, ...] (a sentence's c candidates consecutive) -> [B, 1, ...], a beam axis
    of one as the searches return."""
    best = tf.argmax(tf.reshape(selection, [batch, per_sentence]), axis=1, output_type=tf.int32)

    def pick(t):
        grouped = tf.reshape(t, tf.concat([[batch, per_sentence], tf.shape(t)[1:]], 0))
        return tf.gather(grouped, best, batch_dims=1)[:, None]

    return {name: pick(t) for name, t in tensors.items()}


def _sequence_lengths(ids):
    """Length up to and including the first EOS (the full width if there is none)."""
    is_eos = tf.cast(ids == EOS_ID, tf.int32)
    seen = tf.cumsum(is_eos, axis=-1, exclusive=True) > 0
    return tf.reduce_sum(tf.cast(tf.logical_not(seen), tf.int32), axis=-1)


def output_tokens(logits, vocab_ids):
    """The ids a step's logits [..., N] stand for: the shortlist `vocab_ids`, or every id (then
    a constant of the compiled loop: N is static)."""
    return tf.range(logits.shape[-1]) if vocab_ids is None else vocab_ids


def greedy_search(model, source, max_length, limits, min_length=0, vocab_ids=None):
    """Arg-max decoding. Returns ids [B, L] (PAD after EOS), lengths [B], log-prob scores [B].
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
        cond, body,
        (tf.constant(0), tf.zeros([batch, max_length], tf.int32), tf.fill([batch], BOS_ID),
         tf.zeros([batch]), tf.zeros([batch], tf.bool), state["cache"]))
    return {"ids": ids, "lengths": _sequence_lengths(ids), "scores": scores, "log_probs": scores}


def _batch_size(source):
    """Static batch size when known (keeps while_loop shapes fixed), else dynamic."""
    return source.shape[0] if source.shape[0] is not None else tf.shape(source)[0]


def _tile(x, beam):
    return tf.repeat(x, beam, axis=0)


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

    Returns ids [B, K, L] (PAD after EOS), lengths [B, K], scores [B, K] = log P / lp(|Y|)
    and log_probs [B, K], best first. Stops early only when no alive beam can still beat the
    worst of K finished hypotheses. `vocab_ids` as in greedy_search.
    """
    k = beam_size
    batch = _batch_size(source)
    state = model.initial_state(source, max_length)
    memory = step_memory(model, state["memory"], vocab_ids)  # once per sentence: grouped queries
    cache = tf.nest.map_structure(lambda t: _tile(t, k), state["cache"])
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
        flat_origin = tf.reshape(origin + k * tf.range(batch)[:, None], [-1])
        cache = tf.nest.map_structure(lambda t: tf.gather(t, flat_origin), cache)

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
        cond, body,
        (tf.constant(0), empty_ids, init_logp, empty_ids, tf.fill([batch, k], NEG),
         tf.fill([batch, k], NEG), cache))

    # A sentence with fewer than k finished hypotheses falls back on its alive ones.
    has_finished = fin_scores > NEG / 2
    alive_scores = alive_logp / length_penalty(max_length, alpha)
    ids = tf.where(has_finished[:, :, None], fin_ids, alive_ids)
    lengths = _sequence_lengths(ids)
    ids = tf.where(positions[None, None, :] < lengths[:, :, None], ids, PAD_ID)
    return {"ids": ids, "lengths": lengths,
            "scores": tf.where(has_finished, fin_scores, alive_scores),
            "log_probs": tf.where(has_finished, fin_logp, alive_logp)}


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
