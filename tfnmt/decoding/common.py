"""What every search shares: the impossible score, length rules, the banned-token bias, the
best of several candidates.

Every search returns ids [B, K, L], lengths [B, K] and scores [B, K]: a hypothesis's total
log-probability under the model that produced it (NAT with a rescorer: under the rescorer).
Where a search ranks by something else (beam search's length penalty, mask-predict's mean) it
also returns that as "selection"."""

import contextlib
import contextvars

import tensorflow as tf

from tfnmt.data.pipeline import padded_lengths
from tfnmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from tfnmt.layers.attention import NEG_INF


# Set while a decode function traces outside XLA: see unclustered().
_UNCLUSTERED = contextvars.ContextVar("unclustered", default=False)


@contextlib.contextmanager
def unclustered():
    """Ops traced inside stay out of --xla_elementwise's auto-clusters, down to the branches and
    loop bodies built through traced_alike (each traces in a graph of its own, which the
    enclosing jit_scope does not reach). A bfloat16 CMLM's first validation in a training
    process took about 470 s with mask-predict clustered, about 215 s without (decisions.md)."""
    token = _UNCLUSTERED.set(True)
    try:
        with tf.xla.experimental.jit_scope(compile_ops=False):
            yield
    finally:
        _UNCLUSTERED.reset(token)


def traced_alike(fn):
    """fn for a tf.while_loop / tf.switch_case: traced under the caller's unclustered()."""
    if not _UNCLUSTERED.get():
        return fn

    def scoped(*args):
        with unclustered():
            return fn(*args)
    return scoped


# The score of an impossible hypothesis: the attention masks' -1e9 (finite: no inf - inf = NaN).
NEG = NEG_INF


def length_penalty(length, alpha):
    """GNMT length penalty ((5 + |Y|) / 6) ** alpha (Wu et al. 2016, Eq. 14); |Y| counts EOS."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def length_limits(source, max_length, a, b):
    """Per-sentence output limit min(floor(a * |x| + b), max_length); |x| counts source EOS."""
    source_length = tf.reduce_sum(tf.cast(source != PAD_ID, tf.float32), axis=1)
    return tf.minimum(tf.cast(a * source_length + b, tf.int32), max_length)


def never(tokens, banned=()):
    """The banned-token rule of every decoder: True for the ids in `tokens` no output may hold
    (PAD, BOS and the method's own `banned`, e.g. [MASK])."""
    out = (tokens == PAD_ID) | (tokens == BOS_ID)
    for token in banned:
        out |= tokens == token
    return out


def token_biases(tokens):
    """What a decode loop adds to a step's log-probabilities over `tokens` [V] (the ids the
    logits stand for: range(V), or a shortlist), loop-invariant: [3, V] rows "normal"
    (PAD and BOS never), "no EOS" (before the minimum length) and "EOS only" (a hypothesis cut
    at the length limit pays log P(EOS), as in fairseq)."""
    normal = tf.where(never(tokens), NEG, 0.0)
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


def fixed_length_allowed(lengths, width, words, banned=()):
    """The one rule of every parallel (non-autoregressive) decoder that fills a candidate of a
    known length N (EOS included): [R, W, V] bool over the ids `words` [V] the logits stand for
    (output_tokens), EOS allowed only at position N - 1 and nothing else there; PAD, BOS and
    the `banned` ids never."""
    return allowed_where_last(tf.range(width)[None] == lengths[:, None] - 1, words, banned)


def allowed_where_last(last, words, banned=()):
    """fixed_length_allowed given `last` [R, W] bool, True at a candidate's last position
    (mask-predict's packed rows hold several candidates)."""
    is_eos = words == EOS_ID
    return tf.where(last[:, :, None], is_eos, ~(never(words, banned) | is_eos))


def bucket_widths(model_max_length, limit):
    """The bucket sizes below a static decode `limit`, then the limit: the widths a parallel
    pass may narrow to (data.pipeline's buckets)."""
    return [w for w in padded_lengths(model_max_length) if w < limit] + [limit]


def narrowest(widths, longest, fn):
    """fn(w) for the smallest of the ascending Python ints `widths` that is >= `longest` (a
    scalar tensor; the last width when none is): one tf.switch_case branch per width, so every
    shape stays static under XLA and only the chosen branch runs."""
    branch = tf.reduce_sum(tf.cast(tf.constant(widths) < longest, tf.int32))
    return tf.switch_case(tf.minimum(branch, len(widths) - 1),
                          [traced_alike(lambda w=w: fn(w)) for w in widths])


def best_of_candidates(selection, tensors, batch, per_sentence, n=1):
    """For each sentence its n candidates of highest selection score, best first (the first of
    equals first); every tensor [B*c, ...] (a sentence's c candidates consecutive) ->
    [B, n, ...], a beam axis as the searches return."""
    best = tf.math.top_k(tf.reshape(selection, [batch, per_sentence]), k=n).indices

    def pick(t):
        grouped = tf.reshape(t, tf.concat([[batch, per_sentence], tf.shape(t)[1:]], 0))
        return tf.gather(grouped, best, batch_dims=1)

    return {name: pick(t) for name, t in tensors.items()}


def sequence_lengths(ids):
    """Length up to and including the first EOS (the full width if there is none)."""
    is_eos = tf.cast(ids == EOS_ID, tf.int32)
    seen = tf.cumsum(is_eos, axis=-1, exclusive=True) > 0
    return tf.reduce_sum(tf.cast(tf.logical_not(seen), tf.int32), axis=-1)


def output_tokens(logits, vocab_ids):
    """The ids a step's logits [..., N] stand for: the shortlist `vocab_ids`, or every id (then
    a constant of the compiled loop: N is static)."""
    return tf.range(logits.shape[-1]) if vocab_ids is None else vocab_ids
