"""Hint-based NART (Li et al. 2019): NLL plus hidden-state and alignment hints from an AT teacher."""

import dataclasses

import tensorflow as tf

from tfnmt.data.sequences import lengths_of, shift_right
from tfnmt.core.errors import UserError
from tfnmt.methods import at
from tfnmt.methods.base import Method
from tfnmt.methods.losses import label_smoothed_cross_entropy


def _cosine_matrix(hidden):
    """[B, T, d] -> [B, T, T] pairwise cosine similarities."""
    unit = tf.math.l2_normalize(tf.cast(hidden, tf.float32), axis=-1, epsilon=1e-12)
    return tf.einsum("bsd,btd->bst", unit, unit)


def hidden_state_hint(student_hidden, teacher_hidden, lengths, gamma_st, gamma_tr):
    """L_hid per sentence (hint-based NART, Sec. 2.2): over layers l and target pairs s < t,
    phi = -log(1 - d_st) where d_st >= gamma_st and d_tr <= gamma_tr (else 0), d = cosine of
    the two positions' layer-l outputs in the student (st) and the teacher (tr); the sum is
    scaled by 2 / ((N - 1) N L). Returns [B] (0 for N < 2)."""
    width = tf.shape(student_hidden[0])[1]
    idx = tf.range(width)
    n = lengths[:, None, None]
    pairs = (idx[None, :, None] < idx[None, None, :]) & (idx[None, None, :] < n)
    total = 0.0
    for student, teacher in zip(student_hidden, teacher_hidden):
        d_st = _cosine_matrix(student)
        d_tr = tf.stop_gradient(_cosine_matrix(teacher))
        active = pairs & (d_st >= gamma_st) & (d_tr <= gamma_tr)
        phi = -tf.math.log(tf.maximum(1.0 - d_st, 1e-6))
        total += tf.reduce_sum(tf.where(active, phi, 0.0), axis=[1, 2])
    n = tf.cast(lengths, tf.float32)
    return 2.0 * total / tf.maximum((n - 1.0) * n * len(student_hidden), 1.0)


def alignment_hint(teacher_attention, student_attention, lengths):
    """L_align per sentence: the mean over target positions t < N, layers and heads of
    KL(teacher's encoder-decoder attention || student's) over source positions. Attention
    lists hold [B, H, T, S] per layer. Returns [B]."""
    total = 0.0
    for teacher, student in zip(teacher_attention, student_attention):
        teacher = tf.stop_gradient(tf.cast(teacher, tf.float32))
        student = tf.cast(student, tf.float32)
        kl = tf.reduce_sum(teacher * (tf.math.log(tf.maximum(teacher, 1e-12)) -
                                      tf.math.log(tf.maximum(student, 1e-12))), axis=-1)
        real = tf.range(tf.shape(kl)[2])[None, None] < lengths[:, None, None]
        total += tf.reduce_sum(tf.where(real, kl, 0.0), axis=[1, 2])
    heads = tf.cast(tf.shape(teacher_attention[0])[1], tf.float32)
    n = tf.cast(lengths, tf.float32)
    return total / tf.maximum(n * heads * len(teacher_attention), 1.0)


class HintBased:
    """L = L_nll + lambda L_hid + mu L_align (hint-based NART, Eq. 3), the frozen AT teacher
    teacher-forced on the same (x, y*). The hints are per-sentence means; weighted by each
    sentence's target tokens they join the token-normalised sums of the other objectives."""

    def __init__(self, teacher, hint_lambda=8.0, hint_mu=4.0, gamma_st=0.5, gamma_tr=0.5,
                 label_smoothing=0.1):
        self.teacher, self.hint_lambda, self.hint_mu = teacher, hint_lambda, hint_mu
        self.gamma_st, self.gamma_tr, self.label_smoothing = gamma_st, gamma_tr, label_smoothing

    def terms(self, model, batch, training):

        target = batch["target"]
        logits, student = model(batch, training=training, return_internals=True)
        encoded, source_mask = self.teacher.encode(batch["source"])
        _, teacher = self.teacher.decode(shift_right(target), encoded, source_mask,
                                         return_internals=True)
        lengths = lengths_of(target)
        hid = hidden_state_hint(student["hidden"], teacher["hidden"], lengths, self.gamma_st,
                                self.gamma_tr)
        align = alignment_hint(teacher["attention"], student["attention"], lengths)
        return logits, hid, align, tf.cast(lengths, tf.float32)

    def __call__(self, model, batch, training):
        logits, hid, align, weights = self.terms(model, batch, training)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, batch["target"],
                                                         self.label_smoothing)
        hid, align = tf.reduce_sum(hid * weights), tf.reduce_sum(align * weights)
        total = loss
        if self.hint_lambda:
            total += self.hint_lambda * hid
        if self.hint_mu:
            total += self.hint_mu * align
        return {"loss": total, "nll": nll, "hid": hid, "align": align, "tokens": tokens}


@dataclasses.dataclass
class Settings:  # objective hint: L_nll + hint_lambda L_hid + hint_mu L_align
    # As in the paper the weights make the three terms alike at initialisation; measured for the
    # small Multi30k teacher (results/hint_scales_multi30k_small.json): L_nll 8.74, L_hid 1.05,
    # L_align 1.99 per token, so lambda 8 and mu 4 (8.4 and 8.0).
    hint_lambda: float = 8.0
    hint_mu: float = 4.0
    gamma_st: float = 0.5  # L_hid penalises student pairs with cosine >= gamma_st ...
    gamma_tr: float = 0.5  # ... whose teacher cosine is <= gamma_tr


def check_hint_teacher(config, path):
    """Hints read a Transformer decoder's states and attention: an AT teacher of that family."""
    if config.architecture not in ("transformer", "dat"):
        raise UserError(f"hints come from an autoregressive Transformer teacher; {path} is a "
                        f"{config.architecture} run.")


def build_objective(ctx):
    """objective hint: the paper's loss; objective mle: the NAT on the NLL alone (or word-level
    KD with a --teacher_run), the ablation without hints."""
    cfg, mine = ctx.settings, ctx.run.model
    if ctx.train.objective != "hint":
        return at.build_objective(ctx)
    if not ctx.teacher_config:
        raise UserError("objective hint needs --architecture=nart and a --teacher_run.")
    teacher, path = ctx.teacher()
    theirs = teacher.config
    check_hint_teacher(theirs, path)
    if (mine.decoder_layers, mine.num_heads) != (theirs.decoder_layers, theirs.num_heads):
        raise UserError(f"hints need the teacher's decoder depth and heads: the teacher "
                        f"has {theirs.decoder_layers} layers and {theirs.num_heads} "
                        f"heads, this model {mine.decoder_layers} and {mine.num_heads}.")
    ctx.log(f"hints from {path} (lambda {cfg.hint_lambda}, mu {cfg.hint_mu})")
    return HintBased(teacher, cfg.hint_lambda, cfg.hint_mu, cfg.gamma_st, cfg.gamma_tr,
                     ctx.train.label_smoothing)


# One length M + C; with --length_halfwidth, 2B+1 lengths rescored by the run's teacher, the
# one with "the highest probability" kept (total log-probability, Section 3.2).
METHOD = Method("hint_nart", ("nart",), ("hint", "mle"), build_objective,
                {None: {"method": "nat", "length_halfwidth": 0, "nat_selection": "total"}},
                {"hint": Settings})
