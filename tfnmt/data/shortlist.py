"""A lexical shortlist (Marian's shortlist, CTranslate2's vocabulary map): for every source
piece the target pieces that co-occur with it most often in the training pairs, plus the most
frequent target pieces. A batch is decoded over the union of its sources' lists only, so the
output layer multiplies by those rows of the embedding table instead of all V.

Written here: neither keras-hub nor TensorFlow Text has one; Marian and CTranslate2 read lists
made by external aligners (fast_align), a dependency this project does not have. The "ibm1"
ranking is that aligner's model without its diagonal prior: IBM Model 1's p(target | source),
estimated by a few EM passes over the pairs (Brown et al. 1993).
"""

import os

import numpy as np

from tfnmt.core.errors import UserError
from tfnmt.core.files import replacing
from tfnmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

FILE = "shortlist.npz"
BUCKET = 256  # shortlist sizes are padded to BUCKET * 2**k (one compiled program each)


RANKINGS = ("count", "dice", "ibm1")
IBM1_ITERATIONS = 5


def build(source_ids, target_ids, source_vocab_size, per_source=20, frequent=200,
          ranking="count"):
    """source_ids, target_ids: lists of int sequences (pairs, no EOS) ->
    {"table": [source_vocab_size, per_source] target ids (a source piece never seen lists the
    most frequent targets), "frequent": [frequent] the most frequent target ids}; ties go to
    the smaller id. A source piece's targets are ranked by the number of pairs holding both
    ("count"), or by their Dice coefficient 2 c(s, t) / (c(s) + c(t)) over pairs ("dice"),
    which does not favour the frequent target pieces the "frequent" list already has, or by
    IBM Model 1's translation probability p(t | s) ("ibm1"), which credits a target piece to
    the source pieces that explain it best instead of to every piece of its sentence."""
    if per_source < 1 or frequent < 0:
        raise UserError(f"need per_source >= 1 and frequent >= 0, got {per_source} and "
                        f"{frequent}.")
    if ranking not in RANKINGS:
        raise UserError(f"ranking must be one of {', '.join(RANKINGS)}, got {ranking!r}.")
    pair_keys, target_counts = [], {}
    source_pairs = np.zeros([source_vocab_size], np.int64)  # c(s): pairs holding s
    target_pairs = {}  # c(t)
    for source, target in zip(source_ids, target_ids):
        s, t = np.unique(np.asarray(source, np.int64)), np.unique(np.asarray(target, np.int64))
        pair_keys.append((s[:, None] << 32 | t[None, :]).ravel())
        source_pairs[s] += 1
        for piece in t.tolist():
            target_pairs[piece] = target_pairs.get(piece, 0) + 1
        for piece in target:
            target_counts[piece] = target_counts.get(piece, 0) + 1
    by_frequency = sorted(target_counts, key=lambda piece: (-target_counts[piece], piece))
    top = np.array((by_frequency + [PAD_ID] * per_source)[:max(per_source, frequent)], np.int32)
    table = np.tile(top[:per_source], (source_vocab_size, 1))
    keys, counts = np.unique(np.concatenate(pair_keys) if pair_keys else
                             np.zeros([0], np.int64), return_counts=True)
    sources, targets = (keys >> 32).astype(np.int64), (keys & 0xFFFFFFFF).astype(np.int32)
    score = counts.astype(np.float64)
    if ranking == "ibm1":
        score = ibm1(source_ids, target_ids, keys)
    if ranking == "dice":
        target_total = np.array([target_pairs[t] for t in targets.tolist()], np.float64)
        score = 2.0 * score / (source_pairs[sources] + target_total)
    order = np.lexsort((targets, -score, sources))  # by source, then score down, then id
    sources, targets = sources[order], targets[order]
    starts = np.searchsorted(sources, np.arange(source_vocab_size))
    ends = np.searchsorted(sources, np.arange(source_vocab_size), side="right")
    for piece in np.nonzero(ends > starts)[0]:
        chosen = targets[starts[piece]:min(ends[piece], starts[piece] + per_source)]
        table[piece, :len(chosen)] = chosen
        table[piece, len(chosen):] = chosen[0]  # padded with a listed id: the union is a set
    return {"table": table, "frequent": top[:frequent]}


def ibm1(source_ids, target_ids, keys, iterations=IBM1_ITERATIONS):
    """IBM Model 1 by EM from uniform p(t | s): each target token's count is shared among the
    source pieces of its pair and a NULL source in proportion to p(t | s), then p(t | s) is
    the shared counts normalised per s. keys: the sorted (s << 32 | t) pairs that co-occur
    (only they get probability) -> p(t | s) for each, float64."""
    null = np.int64(1) << 31  # a source id no vocabulary reaches
    link_keys, group_sizes = [], []
    for source, target in zip(source_ids, target_ids):
        s = np.append(np.asarray(source, np.int64), null)
        t = np.asarray(target, np.int64)
        link_keys.append((s[None, :] << 32 | t[:, None]).ravel())  # [target token, source]
        group_sizes.append(np.full(len(t), len(s)))
    if not link_keys:
        return np.zeros([len(keys)])
    link_keys = np.concatenate(link_keys)
    token = np.repeat(np.arange(sum(len(g) for g in group_sizes)), np.concatenate(group_sizes))
    all_keys, link = np.unique(link_keys, return_inverse=True)  # keys plus the NULL pairs
    source_of = all_keys >> 32
    _, source_index = np.unique(source_of, return_inverse=True)
    prob = np.ones(len(all_keys))
    for _ in range(iterations):
        weight = prob[link]
        share = weight / np.bincount(token, weights=weight)[token]
        counts = np.bincount(link, weights=share, minlength=len(all_keys))
        prob = counts / np.bincount(source_index, weights=counts)[source_index]
    return prob[np.searchsorted(all_keys, keys)]


def save(run_dir, shortlist, settings=""):
    """Writes <run_dir>/shortlist.npz under a temporary name, then renames it; `settings`
    (how the lists were built, one line) is stored beside them for the records."""
    path = os.path.join(run_dir, FILE)
    with replacing(path, ".npz") as tmp:  # np.savez adds .npz to a name without it
        np.savez(tmp, **shortlist, settings=np.array(settings))
    return path


def settings(run_dir):
    """The line save() stored ("" for lists saved without one)."""
    with np.load(os.path.join(run_dir, FILE)) as values:
        return str(values["settings"]) if "settings" in values.files else ""


def load(run_dir):
    path = os.path.join(run_dir, FILE)
    if not os.path.isfile(path):
        raise UserError(f"{run_dir} has no {FILE}; make it with python -m tfnmt.shortlist "
                        f"--run_dir={run_dir}.")
    with np.load(path) as values:
        return {"table": values["table"], "frequent": values["frequent"]}


def padded_size(count, vocab_size):
    """The size union() pads `count` listed ids to: BUCKET * 2**k, or V when that is no
    smaller."""
    size = BUCKET
    while size < count:
        size *= 2
    return vocab_size if size >= vocab_size else size


def coverage(shortlist, source_ids, target_ids, vocab_size, batch_size=1):
    """How much of some target sentences (a model's translations, or references) the lists of
    their sources hold, decoded `batch_size` sentences at a time (consecutive lines, as a
    decode run batches them): {"sentences", "mean_union" (listed ids), "mean_padded" (the size
    decoded, padded as union() pads it), "sentences_outside" (with a piece outside their
    union), "pieces_outside_percent"}. Plain numpy: checks lists without decoding."""
    table, always = shortlist["table"], np.asarray(shortlist["frequent"])
    specials = np.array([PAD_ID, UNK_ID, BOS_ID, EOS_ID])
    sizes, padded, outside_sentences, outside, pieces = [], [], 0, 0, 0
    for start in range(0, len(source_ids), batch_size):
        listed = [table[np.asarray(s, np.int64)].ravel() for s in
                  source_ids[start:start + batch_size]]
        allowed = np.unique(np.concatenate([always, specials] + listed))
        sizes.append(len(allowed))
        padded.append(padded_size(len(allowed), vocab_size))
        for target in target_ids[start:start + batch_size]:
            missing = int((~np.isin(np.asarray(target, np.int64), allowed)).sum())
            outside += missing
            outside_sentences += missing > 0
            pieces += len(target)
    return {"sentences": len(source_ids), "mean_union": float(np.mean(sizes)),
            "mean_padded": float(np.mean(padded)), "sentences_outside": outside_sentences,
            "pieces_outside_percent": 100.0 * outside / max(pieces, 1)}


def union(shortlist, source, vocab_size):
    """The target ids a batch of sources [B, S] may produce: the lists of its pieces, the
    frequent ones, and the special ids, sorted; padded with PAD (never generated) to BUCKET
    times a power of two, or range(V) when that is no smaller: a handful of sizes, so a decode
    function compiles a handful of programs per source width. TensorFlow ops, so exported
    models compute it in their graph (`shortlist` arrays become constants there)."""
    import tensorflow as tf

    ids = tf.concat([tf.reshape(tf.gather(shortlist["table"], source), [-1]),
                     tf.cast(shortlist["frequent"], tf.int32),
                     tf.constant([PAD_ID, UNK_ID, BOS_ID, EOS_ID], tf.int32)], axis=0)
    ids = tf.sort(tf.unique(ids).y)
    count = tf.size(ids)
    sizes = [BUCKET << k for k in range(max(vocab_size // BUCKET, 1).bit_length())]
    size = tf.gather(sizes + [vocab_size], tf.searchsorted(sizes, [count])[0])
    return tf.cond(size >= vocab_size, lambda: tf.range(vocab_size),
                   lambda: tf.pad(ids, [[0, size - count]], constant_values=PAD_ID))
