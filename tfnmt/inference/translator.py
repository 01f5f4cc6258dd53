"""Sentences in, translations out: in-graph tokenization, length-sorted bucketed batches,
a compiled decode function per bucket shape, detokenization, original order restored."""

import dataclasses
import sys

import numpy as np
import tensorflow as tf

from tfnmt import methods, runs
from tfnmt.core.config import DecodeConfig
from tfnmt.core.errors import UserError
from tfnmt.data.pipeline import bucket_length, bucket_length_tensor
from tfnmt.data.shortlist import union
from tfnmt.data.tokenizer import EOS_ID, PAD_ID
from tfnmt.decoding import search
from tfnmt.decoding.common import unclustered
from tfnmt.decoding.iterative import (hybrid_regressive_decode, mask_predict,
                                      mask_predict_choice, mask_predict_fill,
                                      mask_predict_lengths, mask_predict_widths)
from tfnmt.decoding.parallel import nat_translate, SELECTIONS


# The decoding strategies (DECODERS below); a method's own is the default (--method=auto).
STRATEGIES = ("autoregressive", "hrt", "mask_predict", "nat")
# Settings a strategy reads that neither the user nor the run's method gave.
_FALLBACK = {"beam_size": 4, "length_penalty": 0.6, "length_halfwidth": 0,
             "nat_selection": "normalized"}


def resolve_method(config: DecodeConfig, run):
    """Fills in "auto" with the strategy of the run's method (methods.of_run) and hrt_chunk 0
    with the run's k. Settings left None take the method's paper values when it decodes its
    own way, else the strategy's generic ones; a NAT's rescorer is then its teacher."""
    own = methods.of_run(run.model, run.train).decode_defaults(run.model.architecture)
    method = own["method"] if config.method == "auto" else config.method
    if method == "hrt" and run.model.architecture != "transformer":
        raise UserError(f"hrt decoding needs a Transformer trained with --objective=hrt; "
                        f"{run.run_dir} is a {run.model.architecture} run.")
    if method == "hrt" and run.train.objective != "hrt":
        print(f"warning: {run.run_dir} was trained with --objective={run.train.objective}, "
              "not hrt: its Skip-AT and Skip-CMLM outputs are not what it learned.",
              file=sys.stderr, flush=True)
    chunk = config.hrt_chunk or (run.train.settings.hrt_chunk if run.train.objective == "hrt"
                                   else 2)
    defaults = dict(_FALLBACK)
    if method == own["method"]:
        defaults.update({k: v for k, v in own.items() if k != "method"})
    unset = {k: v for k, v in defaults.items() if getattr(config, k) is None}
    rescore_run, rescore_checkpoint = config.rescore_run, config.rescore_checkpoint
    if rescore_run is None:  # the AT the run learned from, when it decodes its own way
        teacher = run.train.teacher if method == own["method"] == "nat" else None
        rescore_run = teacher.run if teacher else ""
        if teacher and rescore_checkpoint is None:
            rescore_checkpoint = teacher.checkpoint
    return dataclasses.replace(config, method=method, hrt_chunk=chunk, rescore_run=rescore_run,
                               rescore_checkpoint=rescore_checkpoint or "best", **unset)


def load_rescorer(config: DecodeConfig, run):
    """The AT model that rescores NAT candidates (None without rescoring), at the decoding's
    precision; it must share the run's vocabularies."""

    if config.method != "nat" or not config.rescore_run or config.length_halfwidth == 0:
        return None
    teacher_run = runs.load(config.rescore_run)
    runs.check_same_vocabularies(run, teacher_run, "rescoring run")
    if teacher_run.model.architecture not in ("transformer", "dat"):
        raise UserError(f"the rescoring run must be an autoregressive transformer or DAT, got "
                        f"{teacher_run.model.architecture}.")
    return runs.restore_model(teacher_run, config.rescore_checkpoint, config.precision)[0]


def check_config(config: DecodeConfig, model):
    """One clear sentence for settings no decoder can honour."""
    if config.method not in STRATEGIES:
        raise UserError(f"method must be one of {', '.join(STRATEGIES)}, got {config.method!r}.")
    if config.beam_size < 1 or config.batch_size < 1:
        raise UserError(f"beam_size and batch_size must be positive, got {config.beam_size} and "
                        f"{config.batch_size}.")
    if config.method == "autoregressive" and not 1 <= config.n_best <= config.beam_size:
        raise UserError(f"need 1 <= n_best <= beam_size, got n_best {config.n_best} and "
                        f"beam_size {config.beam_size}.")
    if config.method not in ("autoregressive", "nat") and config.n_best != 1:
        raise UserError(f"{config.method} decoding returns one hypothesis; n_best must be 1.")
    if config.method == "hrt":
        if config.hrt_chunk not in (2, 3, 4):
            raise UserError(f"hrt_chunk must be 2, 3 or 4, got {config.hrt_chunk}.")
        if not 1 <= config.n_nat <= config.beam_size:
            raise UserError(f"need 1 <= n_nat <= beam_size, got n_nat {config.n_nat}.")
    if (config.method == "nat") != hasattr(model, "nat_decode"):
        raise UserError("nat decoding is for non-autoregressive models, and they decode only "
                        "with it.")
    if config.method == "nat" and config.length_halfwidth < 0:
        raise UserError(f"length_halfwidth must be >= 0, got {config.length_halfwidth}.")
    if config.method == "nat" and not 1 <= config.n_best <= 2 * config.length_halfwidth + 1:
        raise UserError(f"nat decoding returns its {2 * config.length_halfwidth + 1} length "
                        f"candidates at most; got n_best {config.n_best}.")
    if config.nat_selection not in SELECTIONS:
        raise UserError(f"nat_selection must be normalized or total, got "
                        f"{config.nat_selection!r}.")
    if config.collapse_repeats and config.method != "nat":
        raise UserError(f"--collapse_repeats is for nat decoding, not {config.method}.")
    if config.shortlist and config.method == "mask_predict":
        raise UserError("--shortlist works with autoregressive, hrt and nat decoding, not "
                        "mask_predict yet.")
    if config.method == "mask_predict":
        if not hasattr(model, "length_logits"):
            raise UserError("mask_predict needs a model with a length predictor "
                            "(--architecture=cmlm).")
        if config.iterations < 1 or config.length_beam < 1:
            raise UserError("mask_predict needs iterations >= 1 and length_beam >= 1.")


def _autoregressive(model, source, max_length, config, special, rescorer, vocab_ids):
    return search.decode(model, source, max_length, config.beam_size, config.length_penalty,
                         config.max_length_a, config.max_length_b, vocab_ids=vocab_ids)


def _hrt(model, source, max_length, config, special, rescorer, vocab_ids):
    return hybrid_regressive_decode(
        model, source, max_length, config.hrt_chunk, special["mask"], special["bos_k"],
        config.beam_size, config.n_nat, config.length_penalty, config.max_length_a,
        config.max_length_b, vocab_ids)


def _mask_predict(model, source, max_length, config, special, rescorer, vocab_ids):
    return mask_predict(model, source, special["mask"], config.iterations, config.length_beam,
                        max_length)


def _nat(model, source, max_length, config, special, rescorer, vocab_ids):
    return nat_translate(model, source, max_length, config.length_halfwidth, rescorer,
                         config.nat_selection, vocab_ids, config.n_best,
                         config.collapse_repeats)


DECODERS = {"autoregressive": _autoregressive, "hrt": _hrt, "mask_predict": _mask_predict,
            "nat": _nat}


def static_limit(config: DecodeConfig, source_width: int, model_max_length: int) -> int:
    """The output length of a source batch `source_width` wide: the bucket of
    min(floor(a * S + b), model maximum), in float32 as make_decode_fn's graph computes it."""
    limit = np.floor(np.float32(config.max_length_a) * np.float32(source_width) +
                     np.float32(config.max_length_b))
    return bucket_length(min(int(limit), model_max_length), model_max_length)


class StagedMaskPredict:
    """Mask-predict under XLA in process, as two compiled programs: the length candidates (one
    program per batch shape), then the iterations on packed rows as narrow as the batch's
    longest sum of candidate lengths allows (one program per batch shape and width, compiled
    when a batch first needs it). The one-program form (make_decode_fn, what a SavedModel
    holds) branches over every width below the limit, so its first call compiles all of their
    passes (decisions.md). Same outputs (tests/inference/test_translator.py)."""

    def __init__(self, model, config: DecodeConfig, model_max_length, mask_id):
        self.config, self.model_max_length = config, model_max_length
        self._lengths = tf.function(
            lambda source, width: mask_predict_lengths(model, source, config.length_beam, width),
            jit_compile=True, autograph=False)
        self._fill = tf.function(
            lambda encoded, source_mask, lengths, w, width: mask_predict_choice(
                *mask_predict_fill(model, encoded, source_mask, lengths, mask_id,
                                   config.iterations, w), lengths, width),
            jit_compile=True, autograph=False)

    def __call__(self, source):
        width = static_limit(self.config, int(source.shape[1]), self.model_max_length)
        encoded, source_mask, lengths = self._lengths(source, width)
        longest = int(tf.reduce_max(tf.reduce_sum(lengths, 1)))
        widths = mask_predict_widths(self.config.length_beam, width)
        w = next((w for w in widths if w >= longest), widths[-1])
        return self._fill(encoded, source_mask, lengths, w, width)


def make_decode_fn(model, config: DecodeConfig, model_max_length, jit_compile,
                   target_tokenizer=None, rescorer=None):
    """tf.function(source [B, S]) -> decoding outputs [B, K, ...]; used in process and in
    SavedModels alike. The output length is the bucket of min(floor(a*S + b), model maximum),
    computed from the input shape: a Python int when the traced width is known (in process),
    else a tensor (a SavedModel signature), which XLA still sees as a constant.
    hrt and mask_predict read [MASK] and [BOS_k] from the target tokenizer; nat rescores its
    length candidates with `rescorer` when given."""
    check_config(config, model)
    special = {}
    if config.method in ("hrt", "mask_predict"):
        special = {"mask": target_tokenizer.piece_id("<mask>"),
                   "bos_k": target_tokenizer.piece_id(f"<bos_{config.hrt_chunk}>")}
    decoder = DECODERS[config.method]

    def fn(source, vocab_ids=None):
        if source.shape[1] is not None:  # traced for one width: the limit as a Python int
            max_length = static_limit(config, source.shape[1], model_max_length)
        else:
            width = tf.cast(tf.shape(source)[1], tf.float32)
            limit = tf.cast(tf.floor(config.max_length_a * width + config.max_length_b),
                            tf.int32)
            max_length = bucket_length_tensor(tf.minimum(limit, model_max_length),
                                              model_max_length)
        if jit_compile:
            return decoder(model, source, max_length, config, special, rescorer, vocab_ids)
        with unclustered():  # a training process's --xla_elementwise clusters every graph
            return decoder(model, source, max_length, config, special, rescorer, vocab_ids)
    return tf.function(fn, jit_compile=jit_compile, autograph=False)


class Translator:
    def __init__(self, model, source_tokenizer, target_tokenizer, config: DecodeConfig,
                 max_length, rescorer=None, shortlist=None):
        """`shortlist` (data.shortlist.load) is required when config.shortlist is set."""
        self.model, self.config, self.max_length = model, config, max_length
        if config.shortlist and shortlist is None:
            raise ValueError("config.shortlist needs the run's shortlist")
        self.shortlist = ({k: tf.constant(v, tf.int32) for k, v in shortlist.items()}
                          if config.shortlist else None)
        self.source_tokenizer, self.target_tokenizer = source_tokenizer, target_tokenizer
        # A graph, not eager ops: 0.41 against 2.19 ms a batch-1 union (the hint-NART's lists;
        # a quarter of its batch-1 pass with one length). One trace serves every shape.
        self._union = tf.function(
            lambda source: union(self.shortlist, source, model.config.output_vocab_size),
            input_signature=[tf.TensorSpec([None, None], tf.int32)], autograph=False)
        self.decode_fn = make_decode_fn(model, config, max_length, config.xla, target_tokenizer,
                                        rescorer)
        # What translate_ids runs: decode_fn, or mask-predict's two stages under XLA.
        self._decode = (StagedMaskPredict(model, config, max_length,
                                          target_tokenizer.piece_id("<mask>"))
                        if config.method == "mask_predict" and config.xla else self.decode_fn)

    def encode(self, sentences):
        """Strings -> list of int32 arrays ending with EOS, truncated to the model's max length;
        self.truncated lists (index, tokens) of the sentences that were cut."""
        self.truncated = []
        if not sentences:
            return []
        ragged = self.source_tokenizer.tokenize(tf.constant(sentences))
        out = []
        for i, ids in enumerate(ragged.numpy()):
            if len(ids) > self.max_length - 1:
                self.truncated.append((i, len(ids)))
            out.append(np.append(ids[: self.max_length - 1], EOS_ID).astype(np.int32))
        return out

    def capacity(self, width):
        """Sentences a batch of source width `width` holds: batch_size, or with batch_tokens
        the largest power of two whose padded batch fits the budget (at least one)."""
        if not self.config.batch_tokens:
            return self.config.batch_size
        fit = max(self.config.batch_tokens // width, 1)
        return 1 << (fit.bit_length() - 1)

    def batches(self, encoded):
        """Yields (indices, padded source [R, S]) sorted by source length: S a bucket size, R
        the batch rounded up to a power of two (at most its capacity) with one-token rows, so
        a short last batch reuses a compiled program. Sentences with no tokens are left out."""
        order = sorted((i for i in range(len(encoded)) if len(encoded[i]) > 1),
                       key=lambda i: len(encoded[i]))
        groups, index = [], []
        for i in order:  # ascending lengths: the newest sentence sets the batch's width
            width = bucket_length(len(encoded[i]), self.max_length)
            if index and len(index) + 1 > self.capacity(width):
                groups.append(index)
                index = []
            index.append(i)
        if index:
            groups.append(index)
        for index in groups:
            width = bucket_length(max(len(encoded[i]) for i in index), self.max_length)
            rows = min(self.capacity(width), 1 << (len(index) - 1).bit_length())
            source = np.full([rows, width], PAD_ID, np.int32)
            source[len(index):, 0] = EOS_ID  # filler rows: an empty sentence
            for row, i in enumerate(index):
                source[row, :len(encoded[i])] = encoded[i]
            yield index, source

    def vocab_ids(self, source):
        """The shortlist union of a padded source batch (None without a shortlist)."""
        if self.shortlist is None:
            return None
        return self._union(tf.constant(source, tf.int32))

    def translate_ids(self, source):
        vocab_ids = self.vocab_ids(source)
        if vocab_ids is None:
            return self._decode(tf.constant(source))
        return self._decode(tf.constant(source), vocab_ids)

    def translate(self, sentences, progress=None):
        """Returns, per sentence, a list of n_best (translation, score) pairs, best first; a
        sentence with no tokens translates to ("", 0.0). `progress(done)` is called after each
        batch. All outputs are detokenized in one call at the end (a call costs ~0.8 ms on CPU,
        a quarter of a NAT decode of a short sentence, so not one per batch)."""
        n_best = self.config.n_best
        order, rows, scores = [], [], []
        for index, source in self.batches(self.encode(sentences)):
            out = self.translate_ids(source)
            ids = out["ids"][: len(index), :n_best].numpy()
            order += index
            rows.append(ids.reshape(-1, ids.shape[-1]))
            scores.append(out["scores"][: len(index), :n_best].numpy())
            if progress is not None:
                progress(len(order))
        results = [[("", 0.0)] * n_best for _ in sentences]
        if not order:
            return results
        width = max(r.shape[1] for r in rows)
        flat = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1])),
                                      constant_values=PAD_ID) for r in rows])
        texts = self.target_tokenizer.detokenize(flat).numpy().reshape(len(order), n_best)
        scores = np.concatenate(scores)
        for row, i in enumerate(order):
            results[i] = [(t.decode("utf-8"), float(s)) for t, s in zip(texts[row], scores[row])]
        return results
