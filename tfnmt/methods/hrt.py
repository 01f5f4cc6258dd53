"""Hybrid-Regressive Translation (HRT paper): one Transformer decoder trained on four tasks
with a curriculum, decoded Skip-AT then Skip-CMLM (decoding.iterative). Its training samples
(Figure 3) are built in-graph from a padded target batch [B, T] whose rows are
y_1 .. y_N, EOS, PAD ...

Convention: the input token at position p is y_p (y_0 is the BOS), as in teacher forcing; a
label at PAD is ignored. The target with its EOS is extended to a multiple of k with EOS copies,
so the last kept token z_m is always EOS (inference truncates at the first EOS anyway).
"""

import dataclasses

import tensorflow as tf

from tfnmt.data.sequences import lengths_of, shift_right
from tfnmt.core.config import TrainConfig
from tfnmt.core.errors import UserError
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.decoding.iterative import bidirectional_mask
from tfnmt.methods.base import Method
from tfnmt.methods.cmlm import cmlm_sample
from tfnmt.methods.losses import token_cross_entropy



def chunked_target(target, k):
    """[B, T] -> [B, k * ceil(T / k)]: each row's EOS repeated up to its next multiple of k."""
    width = -(-tf.shape(target)[1] // k) * k
    padded = tf.pad(target, [[0, 0], [0, width - tf.shape(target)[1]]])
    lengths = lengths_of(target)
    chunked_lengths = -(-lengths // k) * k
    p = tf.range(width)[None, :]
    return tf.where((p >= lengths[:, None]) & (p < chunked_lengths[:, None]), EOS_ID, padded)


def at_sample(target):
    """TASK-AT: input [BOS, y_1 .. y_{N}] at positions 0 .. N, labels y_1 .. y_N, EOS."""
    positions = tf.broadcast_to(tf.range(tf.shape(target)[1])[None], tf.shape(target))
    return {"input": shift_right(target), "positions": positions, "labels": target,
            "causal": True}


def skip_at_sample(target, k, bos_k_id):
    """TASK-SKIP-AT: input [BOS_k, z_1 .. z_{m-1}] at positions 0, k, .., (m-1)k, labels
    z_1 .. z_m, where z_i = y_{ik}."""
    chunked = chunked_target(target, k)
    z = chunked[:, k - 1::k]                      # z_i = y_{ik}, i = 1 .. m (PAD beyond)
    inputs = tf.where(z != PAD_ID, tf.concat([tf.fill([tf.shape(z)[0], 1], bos_k_id),
                                              z[:, :-1]], axis=1), PAD_ID)
    positions = tf.broadcast_to(tf.range(tf.shape(z)[1])[None] * k, tf.shape(z))
    return {"input": inputs, "positions": positions, "labels": z, "causal": True}


def skip_cmlm_sample(target, k, mask_id):
    """TASK-SKIP-CMLM: k-1 [MASK]s before every kept z_i (positions 1 .. mk); labels are the
    masked tokens, PAD (ignored) at the kept ones."""
    chunked = chunked_target(target, k)
    p = tf.range(1, tf.shape(chunked)[1] + 1)[None, :]
    kept = tf.equal(p % k, 0)
    real = chunked != PAD_ID
    inputs = tf.where(real & ~kept, mask_id, chunked)
    labels = tf.where(real & ~kept, chunked, PAD_ID)
    return {"input": inputs, "positions": tf.broadcast_to(p, tf.shape(chunked)),
            "labels": labels, "causal": False}


def curriculum_fraction(step, total_steps, curriculum_lambda=1.0):
    """p_k = (t / T) ** lambda (Eq. 2 of the HRT paper): the share of primary-task samples."""
    t = tf.cast(step, tf.float32)
    return tf.clip_by_value(t / float(max(total_steps, 1)), 0.0, 1.0) ** curriculum_lambda


def primary_rows(batch_size, fraction):
    """[B] bool: the first round(fraction * B) rows build primary-task samples."""
    count = tf.cast(tf.round(fraction * tf.cast(batch_size, tf.float32)), tf.int32)
    return tf.range(batch_size) < count


def _padded(sample, width):
    """A task sample with input, positions and labels right-padded to `width` (PAD, position 0)."""
    pad = [[0, 0], [0, width - tf.shape(sample["input"])[1]]]
    return {k: tf.pad(sample[k], pad) for k in ("input", "positions", "labels")}


class HybridRegressive:
    """HRT's training objective (Algorithm 1 of the HRT paper): TASK-AT and TASK-CMLM on the
    auxiliary rows, TASK-SKIP-AT and TASK-SKIP-CMLM on the primary rows (a share p_k that grows
    with the step), all four cross-entropies in one update; with mixed distillation each example
    takes its raw target with probability p_raw, else its distilled one.

    Each row has one causal task (AT or Skip-AT) and one bidirectional task (CMLM or
    Skip-CMLM), so two decoder passes over the batch, each row's sample padded to the chunked
    width, serve all four tasks with shapes that stay static under XLA whatever p_k is.
    """

    def __init__(self, k, mask_id, bos_k_id, step, total_steps, rng, curriculum_lambda=1.0,
                 p_raw=1.0, label_smoothing=0.1):
        self.k, self.mask_id, self.bos_k_id = k, mask_id, bos_k_id
        self.step, self.total_steps, self.rng = step, total_steps, rng
        self.curriculum_lambda, self.p_raw = curriculum_lambda, p_raw
        self.label_smoothing = label_smoothing

    def __call__(self, model, batch, training):

        target = batch["target"]
        rows = tf.shape(target)[0]
        if "distilled" in batch:
            raw = self.rng.uniform([rows]) < self.p_raw
            target = tf.where(raw[:, None], target, batch["distilled"])
        primary = primary_rows(rows, curriculum_fraction(self.step, self.total_steps,
                                                         self.curriculum_lambda))
        encoded, source_mask = model.encode(batch["source"], training=training)
        width = -(-tf.shape(target)[1] // self.k) * self.k
        passes = {  # (task of the auxiliary rows, task of the primary rows)
            "causal": (("at", at_sample(target)),
                       ("skip_at", skip_at_sample(target, self.k, self.bos_k_id))),
            "bidirectional": (("cmlm", cmlm_sample(target, self.mask_id, self.rng)),
                              ("skip_cmlm", skip_cmlm_sample(target, self.k,
                                                                         self.mask_id)))}
        out = {"loss": 0.0, "nll": 0.0, "tokens": 0.0}
        for kind, ((aux_name, aux), (primary_name, prim)) in passes.items():
            aux, prim = _padded(aux, width), _padded(prim, width)
            sample = {k: tf.where(primary[:, None], prim[k], aux[k]) for k in aux}
            self_mask = None if kind == "causal" else bidirectional_mask(sample["input"])
            logits = model.decode(sample["input"], encoded, source_mask, self_mask=self_mask,
                                  training=training, positions=sample["positions"])
            loss, nll, weights = token_cross_entropy(logits, sample["labels"],
                                                     self.label_smoothing)
            out.update(loss=out["loss"] + tf.reduce_sum(loss * weights),
                       nll=out["nll"] + tf.reduce_sum(nll * weights),
                       tokens=out["tokens"] + tf.reduce_sum(weights))
            row_nll = tf.reduce_sum(nll * weights, axis=1)
            out[f"nll_{aux_name}"] = tf.reduce_sum(tf.where(primary, 0.0, row_nll))
            out[f"nll_{primary_name}"] = tf.reduce_sum(tf.where(primary, row_nll, 0.0))
        return out


@dataclasses.dataclass
class Settings:
    hrt_chunk: int = 2  # chunk size k
    curriculum_lambda: float = 1.0  # curriculum exponent (Eq. 2)
    # T of the curriculum (Eq. 2); 0: the run's train_steps when it is made. Kept in the run
    # (complete), so a longer --train_steps later trains on at p_k = 1 instead of moving it.
    curriculum_steps: int = 0
    p_raw: float = 0.2  # mixed distillation: P(raw target); the paper's En<->De choice

    def stationary_from(self):
        """The step from which the objective no longer changes (the curriculum's end: p_k = 1;
        the paper trains through all of it), before which the patience rule does not stop a
        run (measured: a Multi30k run stopped by it at step 6,000 of T = 8,000 with greedy
        val 38.24, where the same recipe reached 40.28 at 12,000; docs/decisions.md)."""
        return self.curriculum_steps

    @staticmethod
    def complete(settings, train):
        """config.json's settings with T filled in: the train_steps of the values given (an
        HRT run made before curriculum_steps existed ran its curriculum over its
        train_steps)."""
        if not settings.get("curriculum_steps"):
            settings = {**settings, "curriculum_steps": train.get("train_steps",
                                                                  TrainConfig.train_steps)}
        return settings


def build_objective(ctx):
    cfg, tokenizer, k = ctx.settings, ctx.target_tokenizer, ctx.settings.hrt_chunk
    mask_id, bos_k_id = tokenizer.piece_id("<mask>"), tokenizer.piece_id(f"<bos_{k}>")
    if k < 2 or bos_k_id == tokenizer.piece_id("<unk>"):
        raise UserError(f"hrt_chunk must be 2, 3 or 4 (a reserved <bos_k> token), got {k}.")
    if cfg.curriculum_steps < 0:
        raise UserError(f"--curriculum_steps must be >= 0, got {cfg.curriculum_steps}.")
    return HybridRegressive(k, mask_id, bos_k_id, ctx.step,
                            cfg.curriculum_steps or ctx.train.train_steps, ctx.rng,
                            cfg.curriculum_lambda, cfg.p_raw, ctx.train.label_smoothing)


# Inference: Skip-AT beam b_at = 5, then one Skip-CMLM pass (Sec. 5 of the HRT paper).
METHOD = Method("hrt", ("transformer",), ("hrt",), build_objective,
                {None: {"method": "hrt", "beam_size": 5, "length_penalty": 0.6}},
                {None: Settings})
