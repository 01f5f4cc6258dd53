"""Loss terms. Each returns sums over real (non-padding) target tokens; the trainer normalises
by the number of target tokens in the global batch, so every replica count gives one update."""

import tensorflow as tf

from tfnmt.data.tokenizer import PAD_ID


def token_cross_entropy(logits, labels, epsilon):
    """Per-token (1 - eps) * -log p(y) + eps * mean_v(-log p(v)) (Szegedy et al. 2016) and
    -log p(y), each [B, T], with the [B, T] weights (0 at PAD_ID labels)."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    weights = tf.cast(labels != PAD_ID, tf.float32)
    nll = -tf.gather(log_probs, labels, batch_dims=2)
    smooth = -tf.reduce_mean(log_probs, axis=-1)
    return (1.0 - epsilon) * nll + epsilon * smooth, nll, weights


def label_smoothed_cross_entropy(logits, labels, epsilon):
    """logits [B, T, V], labels [B, T] with PAD_ID = padding. Returns (loss_sum, nll_sum,
    tokens) of token_cross_entropy over the real labels."""
    loss, nll, weights = token_cross_entropy(logits, labels, epsilon)
    return (tf.reduce_sum(loss * weights), tf.reduce_sum(nll * weights),
            tf.reduce_sum(weights))


class MaximumLikelihood:
    """Teacher-forced label-smoothed cross-entropy: the AT training objective."""

    def __init__(self, label_smoothing=0.1):
        self.label_smoothing = label_smoothing

    def __call__(self, model, batch, training):
        logits = model(batch, training=training)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, batch["target"],
                                                         self.label_smoothing)
        return {"loss": loss, "nll": nll, "tokens": tokens}


def word_level_kl(teacher_logits, student_logits, labels):
    """Sum over real target positions of KL(P_teacher || P_student) over the vocabulary."""
    teacher = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32))
    student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32))
    kl = tf.reduce_sum(tf.exp(teacher) * (teacher - student), axis=-1)
    return tf.reduce_sum(kl * tf.cast(labels != PAD_ID, tf.float32))


class KnowledgeDistillation:
    """Eq. 1 of the Hybrid paper as a loss: NLL + lambda * KL(P_teacher || P_student), the KL
    per target position with the frozen teacher teacher-forced on the same prefix."""

    def __init__(self, teacher, kd_lambda=1.0, label_smoothing=0.0):
        self.teacher, self.kd_lambda, self.label_smoothing = teacher, kd_lambda, label_smoothing

    def __call__(self, model, batch, training):
        logits = model(batch, training=training)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, batch["target"],
                                                         self.label_smoothing)
        teacher_logits = tf.stop_gradient(self.teacher(batch, training=False))
        kl = word_level_kl(teacher_logits, logits, batch["target"])
        return {"loss": loss + self.kd_lambda * kl, "nll": nll, "kl": kl, "tokens": tokens}


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
        from tfnmt.data import hrt_samples
        from tfnmt.models.hrt import bidirectional_mask

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
            "causal": (("at", hrt_samples.at_sample(target)),
                       ("skip_at", hrt_samples.skip_at_sample(target, self.k, self.bos_k_id))),
            "bidirectional": (("cmlm", hrt_samples.cmlm_sample(target, self.mask_id, self.rng)),
                              ("skip_cmlm", hrt_samples.skip_cmlm_sample(target, self.k,
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


class ConditionalMaskedLM:
    """Mask-Predict's objective: TASK-CMLM cross-entropy on the masked tokens plus
    length_weight times the cross-entropy of the target-length classifier (EOS counted)."""

    def __init__(self, mask_id, rng, length_weight=0.1, label_smoothing=0.1):
        self.mask_id, self.rng = mask_id, rng
        self.length_weight, self.label_smoothing = length_weight, label_smoothing

    def __call__(self, model, batch, training):
        from tfnmt.data.hrt_samples import cmlm_sample
        from tfnmt.models.hrt import bidirectional_mask

        target = batch["target"]
        encoded, source_mask = model.encode(batch["source"], training=training)
        sample = cmlm_sample(target, self.mask_id, self.rng)
        logits = model.decode(sample["input"], encoded, source_mask,
                              self_mask=bidirectional_mask(sample["input"]), training=training,
                              positions=sample["positions"])
        loss, nll, tokens = label_smoothed_cross_entropy(logits, sample["labels"],
                                                         self.label_smoothing)
        lengths = tf.reduce_sum(tf.cast(target != PAD_ID, tf.int32), axis=1)
        length_nll = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            lengths, tf.cast(model.length_logits(encoded, source_mask), tf.float32)))
        return {"loss": loss + self.length_weight * length_nll, "nll": nll, "tokens": tokens,
                "length_nll": length_nll}


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
        from tfnmt.models.base import shift_right
        from tfnmt.models.nat import lengths_of

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


def redistributed(pi, c):
    """pi' = (pi^2 / c) renormalised over the action categories (imitate-NAT, Eq. 8)."""
    sharpened = tf.square(pi) / c
    return sharpened / tf.reduce_sum(sharpened, axis=-1, keepdims=True)


def action_regularisation(pi, c, real):
    """L_pi = sum over real positions of KL(pi' || pi) (Eq. 9), pi' a fixed target."""
    target = tf.stop_gradient(redistributed(pi, c))
    kl = tf.reduce_sum(target * (tf.math.log(tf.maximum(target, 1e-12)) -
                                 tf.math.log(tf.maximum(pi, 1e-12))), axis=-1)
    return tf.reduce_sum(tf.where(real, kl, 0.0))


class ActionRegularisedMLE:
    """The DAT's objective L_AT + lambda_1 L_pi (imitate-NAT, Eq. 14). Also returns each layer's
    sentence-summed mean action distribution; after the all-reduce the trainer calls
    update_state once per step, so c <- alpha c + (1 - alpha) mean pi is one agreed value."""

    state_keys = ("action_usage", "sentences")

    def __init__(self, action_lambda=0.001, alpha=0.9, label_smoothing=0.1):
        self.action_lambda, self.alpha = action_lambda, alpha
        self.label_smoothing = label_smoothing

    def __call__(self, model, batch, training):
        from tfnmt.models.base import shift_right

        target = batch["target"]
        encoded, source_mask = model.encode(batch["source"], training=training)
        logits, internals = model.decode(shift_right(target), encoded, source_mask,
                                         training=training, return_internals=True)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, target, self.label_smoothing)
        real = target != PAD_ID
        weights = tf.cast(real, tf.float32)[:, :, None]
        lengths = tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)           # [B, 1]
        kl, usage = 0.0, []
        for layer, pi in enumerate(internals["policy"]):
            kl += action_regularisation(pi, model.action_average[layer], real)
            usage.append(tf.reduce_sum(tf.reduce_sum(pi * weights, axis=1) / lengths, axis=0))
        return {"loss": loss + self.action_lambda * kl, "nll": nll, "action_kl": kl,
                "tokens": tokens, "action_usage": tf.stack(usage),
                "sentences": tf.cast(tf.shape(target)[0], tf.float32)}

    def update_state(self, model, totals):
        """totals: action_usage and sentences summed over replicas and micro-batches."""
        mean = totals["action_usage"] / tf.maximum(totals["sentences"], 1.0)
        model.action_average.assign(self.alpha * model.action_average + (1 - self.alpha) * mean)


def imitation_cross_entropy(demonstrator_policies, learner_policies, real):
    """L_IL = sum over layers and real positions of H(pi_AT, pi_NAT) (imitate-NAT, Eq. 12)."""
    total = 0.0
    for teacher, learner in zip(demonstrator_policies, learner_policies):
        teacher = tf.stop_gradient(teacher)
        h = -tf.reduce_sum(teacher * tf.math.log(tf.maximum(learner, 1e-12)), axis=-1)
        total += tf.reduce_sum(tf.where(real, h, 0.0))
    return total


class ImitationLearning:
    """The learner's objective L_NAT + lambda_2 L_IL (Eq. 15) + length_weight times the length
    classifier's cross-entropy; without a demonstrator (the ablation) L_IL is left out."""

    def __init__(self, demonstrator=None, il_lambda=0.001, length_weight=0.1,
                 label_smoothing=0.1):
        self.demonstrator, self.il_lambda = demonstrator, il_lambda
        self.length_weight, self.label_smoothing = length_weight, label_smoothing

    def __call__(self, model, batch, training):
        from tfnmt.models.base import shift_right
        from tfnmt.models.nat import lengths_of

        source, target = batch["source"], batch["target"]
        lengths = lengths_of(target)
        encoded, source_mask = model.encode(source, training=training)
        logits, internals = model.nat_decode(source, encoded, source_mask, lengths,
                                             tf.shape(target)[1], training, return_internals=True)
        loss, nll, tokens = label_smoothed_cross_entropy(logits, target, self.label_smoothing)
        length_logits = model.length_logits(encoded, source_mask)
        length_nll = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.minimum(lengths, tf.shape(length_logits)[1] - 1), tf.cast(length_logits,
                                                                          tf.float32)))
        out = {"nll": nll, "length_nll": length_nll, "tokens": tokens}
        total = loss + self.length_weight * length_nll
        if self.demonstrator is not None:
            d_encoded, d_mask = self.demonstrator.encode(source)
            _, demo = self.demonstrator.decode(shift_right(target), d_encoded, d_mask,
                                               return_internals=True)
            out["imitation"] = imitation_cross_entropy(demo["policy"], internals["policy"],
                                                       target != PAD_ID)
            total += self.il_lambda * out["imitation"]
        out["loss"] = total
        return out
