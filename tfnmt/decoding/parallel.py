"""Length-parallel decoding of non-autoregressive models: several target lengths per sentence in one pass, arg-max fills, AT rescoring."""

import tensorflow as tf

from tfnmt.data.sequences import shift_right
from tfnmt.data.tokenizer import PAD_ID
from tfnmt.decoding.common import (best_of_candidates, best_tokens, fixed_length_allowed,
                                   output_tokens)


def candidate_lengths(centers, halfwidth, max_length):
    """[B, 2B+1] distinct target lengths: center - B .. center + B, the window moved up or down
    to lie within [2, max_length] (a translation is at least one token and EOS), so no two
    candidates of a sentence are the same length unless max_length leaves too few."""
    start = tf.clip_by_value(centers - halfwidth, 2, tf.maximum(max_length - 2 * halfwidth, 2))
    return tf.minimum(start[:, None] + tf.range(2 * halfwidth + 1)[None], max_length)


def argmax_fill(logits, lengths, vocab_ids=None):
    """Per position the best token that is not PAD, BOS or EOS, then EOS at position N - 1 and
    PAD after it: (ids [R, W], log-probabilities of the chosen tokens [R, W], 0 on padding,
    columns [R, W]: where each id is among the logits). With a shortlist the logits [R, W, N]
    stand for `vocab_ids` [N] (the softmax runs over them, as in the autoregressive searches)
    and a column is an index into `vocab_ids`; without one it is the id."""
    width = tf.shape(logits)[1]
    allowed = fixed_length_allowed(lengths, width, output_tokens(logits, vocab_ids))
    columns, token_logp = best_tokens(logits, allowed)
    ids = columns if vocab_ids is None else tf.gather(vocab_ids, columns)
    real = tf.range(width)[None] < lengths[:, None]
    return tf.where(real, ids, PAD_ID), tf.where(real, token_logp, 0.0), columns


def teacher_scores(teacher, source, candidates, vocab_ids=None, columns=None):
    """Total log P_teacher(candidate | source) in ONE teacher-forced pass over all candidates:
    source [B, S] encoded once (its keys and values shared by a sentence's candidates),
    candidates [B * c, W] (a sentence's consecutive; ending with EOS, PAD after) -> [B * c].
    With a shortlist `vocab_ids` [N] holding every candidate id, the teacher projects onto
    those ids only and its softmax runs over them; `columns` [B * c, W] are the candidates'
    indices into `vocab_ids` (argmax_fill's)."""
    encoded, source_mask = teacher.encode(source)
    logits = tf.cast(teacher.decode(shift_right(candidates), encoded, source_mask,
                                    constants=teacher.pass_constants(vocab_ids)), tf.float32)
    picked = candidates if vocab_ids is None else columns
    token_logp = (tf.gather(logits, picked, batch_dims=2) -
                  tf.reduce_logsumexp(logits, axis=-1))
    real = candidates != PAD_ID
    return tf.reduce_sum(tf.where(real, token_logp, 0.0), axis=1)


def collapse_repeats(ids, token_logp, columns):
    """Each run of equal consecutive tokens kept once (its first), the rest moved left:
    (ids, token_logp, columns, lengths) of argmax_fill's shapes, PAD (0) after the new length.
    A NAT's arg-max fills repeat tokens (about 6% of the hint-NART's words on test2016), which
    an AT's outputs almost never do; neither NAT paper collapses them (tfnmt's option)."""
    width = tf.shape(ids)[1]
    previous = tf.pad(ids[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    keep = (ids != previous) & (ids != PAD_ID)
    positions = tf.range(width)[None]
    order = tf.argsort(tf.where(keep, positions, width + positions), axis=1, stable=True)
    lengths = tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)
    real = positions < lengths[:, None]

    def packed(x):
        return tf.where(real, tf.gather(x, order, batch_dims=1), tf.zeros_like(x))

    return packed(ids), packed(token_logp), packed(columns), lengths


SELECTIONS = ("normalized", "total")


def nat_translate(model, source, max_length, halfwidth=0, rescorer=None, selection="normalized",
                  vocab_ids=None, n_best=1, collapse=False):
    """Length-parallel NAT decoding: for each sentence the 2B+1 lengths around the model's
    predicted length (M + C, or a length classifier's choice; B = halfwidth) decoded as one
    batch, each position its arg-max. Each candidate's score is its total log-probability
    under the AT `rescorer` (one teacher-forced pass) when given, else under the NAT itself;
    the candidate with the best score wins, divided by its length first when `selection` is
    "normalized" ("total": the hint paper's highest probability).

    With `collapse`, each candidate's repeated consecutive tokens are kept once before it is
    scored (collapse_repeats): the rescorer scores, and the rule divides by, what is output.

    With `vocab_ids` [N] (a shortlist) the NAT and the rescorer project onto those ids only,
    and every softmax runs over them (as in the autoregressive searches over a shortlist).

    Returns the n_best candidates (at most 2B+1) of each sentence, best first: ids [B, n, W],
    lengths [B, n], scores [B, n] (total log-probability); W is max_length, or less when the
    model bounds its candidates' lengths (length_bound).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if not 1 <= n_best <= 2 * halfwidth + 1:
        raise ValueError(f"n_best must be 1 to the {2 * halfwidth + 1} candidates, got {n_best}")
    bound = model.length_bound(tf.shape(source)[1], halfwidth)
    if bound is not None:
        max_length = tf.minimum(max_length, bound)
    encoded, source_mask = model.encode(source)
    batch, count = tf.shape(source)[0], 2 * halfwidth + 1
    centers = model.predicted_lengths(source, encoded, source_mask)
    lengths = tf.reshape(candidate_lengths(centers, halfwidth, max_length), [-1])
    # One row per candidate; the encoder output stays one row per sentence (grouped attention).
    constants = model.pass_constants(vocab_ids)
    logits = model.nat_decode(tf.repeat(source, count, axis=0), encoded, source_mask, lengths,
                              max_length, constants=constants)
    ids, token_logp, columns = argmax_fill(logits, lengths, vocab_ids)
    if collapse:
        ids, token_logp, columns, lengths = collapse_repeats(ids, token_logp, columns)
    if rescorer is not None and count > 1:
        scores = teacher_scores(rescorer, source, ids, vocab_ids, columns)
    else:
        scores = tf.reduce_sum(token_logp, axis=1)
    chosen = scores / tf.cast(lengths, tf.float32) if selection == "normalized" else scores
    return best_of_candidates(chosen, {"ids": ids, "lengths": lengths, "scores": scores,
                                       "selection": chosen}, batch, count, n_best)
