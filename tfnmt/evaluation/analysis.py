"""What the hint-based NART paper looks at: decoder hidden-state cosine similarity and
encoder-decoder attention for one sentence (its Figures 1 and 2), the share of consecutive
repeated tokens in translations, and the scale of its three loss terms at initialisation; where
an HRT model loses BLEU (its two stages taken apart); what imitation adds to an imitate-NAT
learner's training signal."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from tfnmt import runs
from tfnmt.core.errors import UserError
from tfnmt.core.config import DecodeConfig
from tfnmt.core.files import replacing
from tfnmt.data.pipeline import bucket_length, make_dataset
from tfnmt.data.sequences import shift_right
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.decoding import common, search
from tfnmt.decoding.iterative import skip_cmlm_fill
from tfnmt.decoding.parallel import nat_translate, SELECTIONS
from tfnmt.inference.translator import load_rescorer, resolve_method, Translator
from tfnmt.methods.at import label_smoothed_cross_entropy
from tfnmt.methods.hint_nart import check_hint_teacher, HintBased
from tfnmt.methods.hrt import skip_cmlm_sample
from tfnmt.methods.imitate_nat import ImitationLearning
from tfnmt.models import build_model
from tfnmt.models.nat import NART
from tfnmt.models.transformer import Transformer
from tfnmt.training.trainer import set_seed


def repeated_token_rate(lines):
    """Percentage of tokens (whitespace-separated words) equal to the token before them."""
    repeats = total = 0
    for line in lines:
        words = line.split()
        total += len(words)
        repeats += sum(a == b for a, b in zip(words, words[1:]))
    return 100.0 * repeats / max(total, 1)


def sentence_internals(model, source_tokenizer, target_tokenizer, sentence, layer=-1, head=0,
                       beam_size=4, length_penalty=1.0):
    """Translates one sentence (beam search for AT models, N = M + C for NAT models), then runs
    the decoder in parallel on that output and returns {"source": pieces, "target": pieces,
    "similarity": [T, T] cosines of the chosen layer's outputs, "attention": [T, S] of one
    encoder-decoder attention head of that layer}."""

    if not isinstance(model, Transformer):
        raise UserError("heat maps need a Transformer or a NART (attention weights per head).")
    ids = source_tokenizer.tokenize(tf.constant([sentence])).to_list()[0]
    source = tf.constant([ids[: model.config.max_length - 1] + [EOS_ID]], tf.int32)
    max_length = min(2 * source.shape[1] + 10, model.config.max_length)
    encoded, source_mask = model.encode(source)
    if isinstance(model, NART):
        out = nat_translate(model, source, max_length)
        length = int(out["lengths"][0, 0])
        target = out["ids"][:, 0, :length]
        _, internals = model.nat_decode(source, encoded, source_mask, tf.constant([length]),
                                        length, return_internals=True)
    else:
        out = search.decode(model, source, max_length, beam_size, length_penalty)
        length = int(out["lengths"][0, 0])
        target = out["ids"][:, 0, :length]
        _, internals = model.decode(shift_right(target), encoded, source_mask,
                                    return_internals=True)
    hidden = tf.math.l2_normalize(internals["hidden"][layer][0], axis=-1)
    return {"source": source_tokenizer.pieces(source[0].numpy().tolist()),
            "target": target_tokenizer.pieces(target[0].numpy().tolist()),
            "similarity": (hidden @ tf.transpose(hidden)).numpy(),
            "attention": internals["attention"][layer][0, head].numpy()}


def markdown_table(head, rows):
    """Lines of a markdown table: the header, its rule, then a line per row of cells."""
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def save_figure(figure, path):
    """Writes a matplotlib figure as PNG under a temporary name, then renames it."""
    from matplotlib import pyplot

    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with replacing(path, ".png") as temporary:  # savefig picks the format by the ending
        figure.savefig(temporary, dpi=110, bbox_inches="tight")  # keeps a legend beside the axes
    pyplot.close(figure)


def plot_heatmaps(panels, path, layer, head):
    """panels: [(title, sentence_internals(...))] -> one PNG, a column per model: hidden-state
    similarity on top, attention below."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    columns = len(panels)
    figure, axes = pyplot.subplots(2, columns, figsize=(5 * columns, 10), squeeze=False)
    for column, (title, data) in enumerate(panels):
        top, bottom = axes[0][column], axes[1][column]
        top.imshow(data["similarity"], vmin=-1, vmax=1, cmap="viridis")
        top.set_title(f"{title}: hidden-state cosine (layer {layer})")
        bottom.imshow(data["attention"], vmin=0, vmax=1, cmap="viridis", aspect="auto")
        bottom.set_title(f"{title}: enc-dec attention (layer {layer}, head {head})")
        for ax, rows, cols in ((top, data["target"], data["target"]),
                               (bottom, data["target"], data["source"])):
            ax.set_yticks(range(len(rows)), rows, fontsize=7)
            ax.set_xticks(range(len(cols)), cols, fontsize=7, rotation=90)
    save_figure(figure, path)


def hint_scales(teacher_run, data, batches=10, gamma_st=0.5, gamma_tr=0.5, seed=1234,
                init_from=""):
    """The three terms of the hint-based NART loss for a freshly initialised NART of the
    teacher's shape (or one started from `init_from`'s weights, run_dir[@checkpoint], as
    training does with --init_from) against the trained teacher, on `batches` batches of
    `data`: per-token L_nll (label smoothing 0) and token-weighted means of the per-sentence
    L_hid and L_align, i.e. the same normalisation as in training."""

    run = runs.load(teacher_run)
    check_hint_teacher(run.model, teacher_run)
    teacher, _ = runs.restore_model(run, "averaged" if os.path.isdir(
        os.path.join(run.checkpoint_dir, "averaged")) else "best")
    set_seed(seed)
    student = build_model(dataclasses.replace(run.model, architecture="nart", dropout=0.0))
    if init_from:
        runs.restore_shared_weights(student, *runs.split_checkpoint(init_from))
    objective = HintBased(teacher, gamma_st=gamma_st, gamma_tr=gamma_tr)
    sums = {"nll": 0.0, "hid": 0.0, "align": 0.0, "tokens": 0.0}
    dataset = make_dataset(data.train_source, data.train_target, run.source_vocab,
                           run.target_vocab, dataclasses.replace(data, batch_tokens=2048),
                           training=False)
    for batch in dataset.take(batches):
        logits, hid, align, weights = objective.terms(student, batch, training=False)
        _, nll, tokens = label_smoothed_cross_entropy(logits, batch["target"], 0.0)
        sums["nll"] += float(nll)
        sums["hid"] += float(tf.reduce_sum(hid * weights))
        sums["align"] += float(tf.reduce_sum(align * weights))
        sums["tokens"] += float(tokens)
    tokens = max(sums.pop("tokens"), 1.0)
    return {k: round(v / tokens, 4) for k, v in sums.items()} | {"tokens": int(tokens)}


def action_usage(run, model, source_path, target_path, batches=0):
    """How often each action category is a DAT layer's arg-max, over the real target positions
    of a parallel set decoded teacher-forced: counts [n] summed over layers."""

    if not hasattr(model, "action_average"):
        raise UserError(f"{run.run_dir} is not a DAT (--architecture=dat).")
    counts = np.zeros(run.model.imitation.num_actions, np.int64)
    dataset = make_dataset(source_path, target_path, run.source_vocab, run.target_vocab,
                           run.data, training=False)
    for i, batch in enumerate(dataset):
        if batches and i >= batches:
            break
        encoded, mask = model.encode(batch["source"])
        _, internals = model.decode(shift_right(batch["target"]), encoded, mask,
                                    return_internals=True)
        real = (batch["target"] != PAD_ID).numpy()
        for pi in internals["policy"]:
            counts += np.bincount(np.argmax(pi.numpy(), -1)[real], minlength=len(counts))
    return counts


def imitation_scales(learner_run, learner, demonstrator, source_path, target_path, batches=10):
    """What imitation adds to an imitate-NAT learner's training signal, teacher-forced on
    `batches` batches of a parallel set (dropout off), per target token as training normalises:
    L_NAT (unsmoothed), the imitation cross-entropy H(pi_DAT, pi_NAT) summed over the layers and
    the part of it above the DAT's own policy entropy (the KL the learner can still remove),
    then, over the learner's weights, the gradient of its training loss without imitation
    (smoothed L_NAT and the length term) and of lambda_2 L_IL: their norms and cosine."""

    if learner_run.model.architecture != "imitate_nat" or not \
            learner_run.model.imitation.num_actions:
        raise UserError(f"{learner_run.run_dir} is not an imitate-NAT learner with imitation "
                        "modules (--architecture=imitate_nat, --num_actions above 0).")
    settings = learner_run.train.settings
    objective = ImitationLearning(demonstrator, settings.il_lambda, settings.length_weight,
                                  learner_run.train.label_smoothing)
    variables = learner.trainable_variables
    sums = {"nll": 0.0, "imitation": 0.0, "demonstrator_entropy": 0.0, "tokens": 0.0}
    grads = {"rest": [tf.zeros_like(v) for v in variables],
             "imitation": [tf.zeros_like(v) for v in variables]}
    dataset = make_dataset(source_path, target_path, learner_run.source_vocab,
                           learner_run.target_vocab, learner_run.data, training=False)
    for batch in dataset.take(batches):
        with tf.GradientTape(persistent=True) as tape:
            out = objective(learner, batch, training=False)
            imitation = settings.il_lambda * out["imitation"]
            rest = out["loss"] - imitation
        for name, loss in (("rest", rest), ("imitation", imitation)):
            grads[name] = [g if d is None else g + tf.convert_to_tensor(d) for g, d in
                           zip(grads[name], tape.gradient(loss, variables))]
        del tape
        encoded, mask = demonstrator.encode(batch["source"])
        _, demo = demonstrator.decode(shift_right(batch["target"]), encoded, mask,
                                      return_internals=True)
        real = batch["target"] != PAD_ID
        for pi in demo["policy"]:
            pi = tf.cast(pi, tf.float32)
            entropy = -tf.reduce_sum(pi * tf.math.log(tf.maximum(pi, 1e-12)), -1)
            sums["demonstrator_entropy"] += float(tf.reduce_sum(tf.where(real, entropy, 0.0)))
        for key in ("nll", "imitation", "tokens"):
            sums[key] += float(out[key])
    tokens = max(sums.pop("tokens"), 1.0)
    values = {k: v / tokens for k, v in sums.items()}
    flat = {k: tf.concat([tf.reshape(g, [-1]) for g in v], 0) / tokens for k, v in grads.items()}
    norms = {k: float(tf.norm(v)) for k, v in flat.items()}
    cosine = float(tf.reduce_sum(flat["rest"] * flat["imitation"])) / max(
        norms["rest"] * norms["imitation"], 1e-30)
    return {"il_lambda": settings.il_lambda, "tokens": int(tokens),
            "nll_per_token": round(values["nll"], 4),
            "imitation_per_token": round(values["imitation"], 4),
            "imitation_kl_per_token": round(values["imitation"]
                                            - values["demonstrator_entropy"], 4),
            "gradient_norm_without_imitation": norms["rest"],
            "gradient_norm_of_imitation": norms["imitation"],
            "gradient_ratio": norms["imitation"] / max(norms["rest"], 1e-30),
            "gradient_cosine": round(cosine, 4)}


def plot_action_usage(usages, path):
    """usages: [(title, counts)] -> a PNG: each run's categories sorted by usage, as shares."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, ax = pyplot.subplots(figsize=(8, 4.5))
    for title, counts in usages:
        shares = np.sort(counts)[::-1] / max(counts.sum(), 1)
        used = int((counts > 0).sum())
        ax.plot(np.arange(1, len(shares) + 1), shares, label=f"{title} ({used} used)")
    ax.set_xlabel("action category, by rank of use")
    ax.set_ylabel("share of arg-max decisions")
    ax.set_yscale("log")
    ax.legend()
    save_figure(figure, path)


def hrt_fill(model, source, target, k, mask_id):
    """HRT's Skip-CMLM stage on given translations `target` [B, T] (EOS-ended, PAD after): the
    kept tokens z_i = y_{ik} (the target extended to a multiple of k with EOS, as in training)
    stay, the k - 1 positions before each are filled in one pass. Returns the filled ids
    [B, k * ceil(T / k)] with PAD after the first EOS, as HRT's decode cuts them."""
    sample = skip_cmlm_sample(target, k, mask_id)
    encoded, source_mask = model.encode(source)
    filled, _ = skip_cmlm_fill(model, sample["input"], sample["positions"], encoded,
                               source_mask, mask_id, k)
    lengths = common.sequence_lengths(filled)
    return tf.where(tf.range(tf.shape(filled)[1])[None] < lengths[:, None], filled, PAD_ID)


def _padded(rows, width):
    out = np.full([len(rows), width], PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def fill_given(run, model, sentences, given, batch_size=32):
    """HRT's fill (hrt_fill) of the translations `given` (strings) of `sentences`: (the filled
    translations, the share of the given tokens at the filled positions that the fill
    reproduced)."""
    source_tok, target_tok = run.tokenizers()
    k, mask_id = run.train.settings.hrt_chunk, target_tok.piece_id("<mask>")
    limit = run.model.max_length

    def ids(tokenizer, lines):
        return [np.append(r[: limit - 1], EOS_ID) for r in
                tokenizer.tokenize(tf.constant(lines)).numpy()]

    sources, targets = ids(source_tok, sentences), ids(target_tok, given)
    fill = tf.function(lambda s, t: hrt_fill(model, s, t, k, mask_id), reduce_retracing=True)
    order = sorted(range(len(sentences)), key=lambda i: len(sources[i]))
    out, same, filled_positions = [None] * len(sentences), 0, 0
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        source = _padded([sources[i] for i in index],
                         bucket_length(max(len(sources[i]) for i in index), limit))
        target = _padded([targets[i] for i in index], max(len(targets[i]) for i in index))
        result = fill(tf.constant(source), tf.constant(target)).numpy()
        labels = skip_cmlm_sample(tf.constant(target), k, mask_id)["labels"].numpy()
        masked = labels != PAD_ID  # the filled positions, with the given tokens there
        same += int((result[masked] == labels[masked]).sum())
        filled_positions += int(masked.sum())
        texts = target_tok.detokenize(result).numpy()
        for row, i in enumerate(index):
            out[i] = texts[row].decode("utf-8")
    return out, same / max(filled_positions, 1)


def hrt_stages(hrt_run, hrt_model, teacher_run, teacher_model, sentences, references, beam,
               batch_size=32, xla=True):
    """Where an HRT model's BLEU goes, on `sentences` against `references` (beam `beam`, length
    penalty 1.0): the teacher's beam search; HRT's two stages (Skip-AT beam + fill); the
    same weights decoded as an AT (its TASK-AT); and the fill alone, given every k-th token of
    the teacher's translation or of the reference (with the share of the other tokens it
    reproduces)."""
    import sacrebleu

    def translate(run, model, method):
        config = resolve_method(DecodeConfig(beam_size=beam, length_penalty=1.0, method=method,
                                             batch_size=batch_size, xla=xla), run)
        translator = Translator(model, *run.tokenizers(), config, run.model.max_length)
        return [n_best[0][0] for n_best in translator.translate(sentences)]

    def bleu(hypotheses):
        return round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2)

    teacher = translate(teacher_run, teacher_model, "autoregressive")
    filled_teacher, teacher_kept = fill_given(hrt_run, hrt_model, sentences, teacher, batch_size)
    filled_reference, reference_kept = fill_given(hrt_run, hrt_model, sentences, references,
                                                  batch_size)
    return {"beam": beam, "sentences": len(sentences), "bleu": {
        "teacher": bleu(teacher),
        "hrt": bleu(translate(hrt_run, hrt_model, "hrt")),
        "hrt_as_at": bleu(translate(hrt_run, hrt_model, "autoregressive")),
        "fill_of_teacher": bleu(filled_teacher),
        "fill_of_reference": bleu(filled_reference)},
        "fill_reproduces": {"teacher": round(teacher_kept, 4),
                            "reference": round(reference_kept, 4)}}


def nat_candidates(run, model, sentences, references, halfwidth, selection=None,
                   batch_size=32, xla=True):
    """Where a NAT's length candidates leave BLEU, on `sentences` against `references`: the
    2B+1 candidates (B = halfwidth) rescored by the run's teacher; BLEU of the candidate each
    rule keeps (`selection`: the method's, and the other one) and of an oracle keeping each
    sentence's candidate of highest sentence-BLEU (sacreBLEU's defaults; corpus BLEU does not
    decompose over sentences, so it bounds selection only approximately); and the share of
    sentences whose oracle candidate has each rank under the rule (rank 0: the one kept).

    Two yardsticks say what the oracle's lead means. A length oracle keeps the candidate whose
    length in target pieces is closest to the reference's (ties: the better ranked): if it is
    far below the oracle, choosing the length is not what is lost. And the rescorer's own
    beam of 2B+1 with its n-best: its 1-best and the same oracle over its hypotheses, the gain
    an oracle over as many hypotheses shows when the ranking is the teacher's own."""
    import sacrebleu

    config = resolve_method(DecodeConfig(method="nat", length_halfwidth=halfwidth,
                                         n_best=2 * halfwidth + 1, nat_selection=selection,
                                         rescore_run=None, rescore_checkpoint=None,
                                         batch_size=batch_size, xla=xla), run)
    rescorer = load_rescorer(config, run)
    if rescorer is None:
        raise UserError(f"{run.run_dir} has no teacher to rescore its candidates with.")
    rules = [config.nat_selection, *(r for r in SELECTIONS if r != config.nat_selection)]
    ranked = {}
    for rule in rules:
        translator = Translator(model, *run.tokenizers(),
                                dataclasses.replace(config, nat_selection=rule),
                                run.model.max_length, rescorer)
        ranked[rule] = [[text for text, _ in n] for n in translator.translate(sentences)]

    def bleu(hypotheses):
        return round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2)

    def oracle(nbest):  # per sentence the index of the hypothesis of highest sentence-BLEU
        return [int(np.argmax([sacrebleu.sentence_bleu(c, [r]).score for c in hypotheses]))
                for hypotheses, r in zip(nbest, references)]

    count = 2 * halfwidth + 1
    kept = ranked[rules[0]]
    best = oracle(kept)
    target_tokenizer = run.tokenizers()[1]

    def pieces(texts):
        return [len(ids) for ids in target_tokenizer.tokenize(tf.constant(texts)).numpy()]

    lengths = np.reshape(pieces([c for candidates in kept for c in candidates]), [-1, count])
    closest = np.argmin(np.abs(lengths - np.array(pieces(references))[:, None]), axis=1)

    teacher_run = runs.load(config.rescore_run)
    beam = resolve_method(DecodeConfig(method="autoregressive", beam_size=count, n_best=count,
                                       length_penalty=None, batch_size=batch_size, xla=xla),
                          teacher_run)
    teacher = [[text for text, _ in n] for n in
               Translator(rescorer, *teacher_run.tokenizers(), beam,
                          teacher_run.model.max_length).translate(sentences)]
    ranks = np.bincount(best, minlength=count)
    return {"halfwidth": halfwidth, "candidates": count,
            "sentences": len(sentences), "selection": rules[0],
            "bleu": {**{rule: bleu([c[0] for c in ranked[rule]]) for rule in rules},
                     "oracle": bleu([c[i] for c, i in zip(kept, best)]),
                     "length_oracle": bleu([c[i] for c, i in zip(kept, closest)])},
            "oracle_rank_share": [round(float(n) / max(len(sentences), 1), 4) for n in ranks],
            "rescorer_beam": {"beam": count, "length_penalty": beam.length_penalty,
                              "bleu": bleu([n[0] for n in teacher]),
                              "oracle": bleu([n[i] for n, i in zip(teacher, oracle(teacher))])}}


def timing_fields(passes, sentences, words):
    """A benchmark row's timing: every pass (seconds), the fastest, and its speeds; the counts
    too, so a later round's passes can be merged in (benchmark.merge_round)."""
    seconds = min(passes)
    return {"seconds": round(seconds, 3), "sentences_per_second": round(sentences / seconds, 2),
            "words_per_second": round(words / seconds, 1),
            "pass_seconds": [round(p, 3) for p in passes], "sentences": sentences,
            "words": words}
