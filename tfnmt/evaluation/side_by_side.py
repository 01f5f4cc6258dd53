"""tfnmt beside CTranslate2 on the same random weights, with forced output lengths: what a CPU
user would get from either for a model shape that has no trained run
(python -m tfnmt.benchmark --mode=ctranslate2).

Protocol of a cell (shape, batch, beam): `batch` sources of SOURCE_TOKENS random pieces (EOS
added by both), every hypothesis forced to STEPS decoder steps (tfnmt: STEPS - 1 tokens and a
forced EOS; CTranslate2: min = max decoding length = STEPS), tokens/s = batch * STEPS / the
fastest of `repeats` timed calls after one warm-up call. Every measurement runs in a child
process of its own, so its peak RSS is that configuration's alone; the CTranslate2 children
never import TensorFlow. tfnmt is timed in each of its decoding configurations (TFNMT_CONFIGS,
what `tfnmt.translate --precision [--noxla]` offers), and a cell compares its fastest with
CTranslate2's fastest.
"""

import json
import os
import tempfile
import time

import numpy as np
import sacrebleu
import sentencepiece
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.core.provenance import peak_rss_mb
from tfnmt.decoding import search
from tfnmt.evaluation.ct2_timing import (SOURCE_TOKENS, STEPS, VOCAB_SIZE,  # noqa: F401
                                         SyntheticVocabulary, fastest, in_child, sources)
from tfnmt.evaluation.analysis import markdown_table, timing_fields
from tfnmt.models import build_model, named_weights
from tfnmt.runs import at_precision
from tfnmt.serving import ctranslate2_export

SHAPES = ("small", "base", "12-1")
# name: (precision, XLA, intra-op threads; 0: TensorFlow's default). int8 is fastest with XLA,
# bfloat16 without it (oneDNN's AMX or AVX-512 BF16 kernels; XLA's CPU dots widen bfloat16 to
# float32); one thread is faster at batch 1 (--intra_op_threads=1): docs/decisions.md.
TFNMT_CONFIGS = {"float32_xla": ("float32", True, 0), "int8_xla": ("int8", True, 0),
                 "bfloat16_plain": ("bfloat16", False, 0),
                 "float32_xla_1thr": ("float32", True, 1), "int8_xla_1thr": ("int8", True, 1)}


def random_model(shape, seed=0):
    """The model of `shape` with every kernel drawn from N(0, 1 / fan-in) and every embedding
    table from N(0, 1) (peaked output distributions) by numpy's `seed`
    (the same weights in every process; keras.utils.set_random_seed would reset TensorFlow's
    context, and with it the resources of tokenizers already loaded)."""
    model = build_model(ModelConfig.from_shape(shape, vocab_size=VOCAB_SIZE, dropout=0.0))
    rng = np.random.default_rng(seed)
    for name, weight in sorted(named_weights(model).items()):
        if len(weight.shape) == 2:
            scale = 1.0 if "embedding" in name else weight.shape[0] ** -0.5
            weight.assign(rng.normal(scale=scale, size=weight.shape).astype("float32"))
    return model


def convert_random(shape, output_dir, seed=0):
    """The random model of `shape` as a float32 CTranslate2 model in output_dir."""
    model = random_model(shape, seed)
    vocabulary = SyntheticVocabulary(VOCAB_SIZE)
    spec = ctranslate2_export.build_spec(model, vocabulary, vocabulary)
    spec.validate()
    spec.optimize(quantization=None)
    os.makedirs(output_dir, exist_ok=True)
    spec.save(output_dir)


def time_tfnmt(shape, batch, beam, repeats, precision="float32", xla=True, threads=0, seed=0):
    """tokens/s of tfnmt's decode loop on the random model at `precision` with `threads`
    intra-op threads (0: TensorFlow's default), run in a child of its own."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    model = random_model(shape, seed)
    if precision != "float32":
        model = at_precision(model, precision)
    model.keep_decoding_constants()  # as a restored run's (runs.restore_model)
    source = tf.constant(sources(batch), tf.int32)
    source = tf.concat([source, tf.fill([batch, 1], 3)], axis=1)  # EOS
    decode = tf.function(lambda s: search.decode(
        model, s, STEPS, beam, 1.0, max_length_a=0.0, max_length_b=STEPS,
        min_length=STEPS)["ids"], jit_compile=xla)
    seconds = fastest(lambda: decode(source).numpy(), repeats)
    return {"tokens_per_second": round(batch * STEPS / seconds, 1),
            "peak_rss_mb": peak_rss_mb(),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}


def side_by_side(shapes=SHAPES, batches=(1, 32), beams=(1, 4),
                 compute_types=("float32", "int8"), threads=(1, 2), repeats=3, log=print,
                 tfnmt_configs=tuple(TFNMT_CONFIGS)):
    """The cells of results/ctranslate2_side_by_side.json (see the module docstring)."""
    cells = []
    for shape in shapes:
        with tempfile.TemporaryDirectory() as model_dir:
            in_child("side_by_side", "convert_random", shape=shape, output_dir=model_dir)
            for batch in batches:
                for beam in beams:
                    mine = {}
                    for name in tfnmt_configs:
                        precision, xla, count = TFNMT_CONFIGS[name]
                        mine[name] = in_child("side_by_side", "time_tfnmt", shape=shape,
                                              batch=batch, beam=beam, repeats=repeats,
                                              precision=precision, xla=xla, threads=count)
                    quickest = max(mine, key=lambda name: mine[name]["tokens_per_second"])
                    theirs, rss = {}, 0.0
                    for compute in compute_types:
                        for count in threads:
                            got = in_child("ct2_timing", "time_ctranslate2",
                                           model_dir=model_dir, batch=batch, beam=beam,
                                           compute_type=compute, threads=count,
                                           repeats=repeats)
                            if got["tensorflow_loaded"]:
                                raise RuntimeError("the CTranslate2 child loaded TensorFlow: "
                                                   "its peak RSS would not be its own.")
                            theirs[f"{compute}_{count}thr"] = got["tokens_per_second"]
                            rss = max(rss, got["peak_rss_mb"])
                    best = max(theirs.values())
                    cell = {"shape": shape, "batch": batch, "beam": beam,
                            "tfnmt": {name: got["tokens_per_second"]
                                      for name, got in mine.items()},
                            "tfnmt_best": quickest,
                            "tfnmt_tokens_per_second": mine[quickest]["tokens_per_second"],
                            "tfnmt_peak_rss_mb": mine[quickest]["peak_rss_mb"],
                            "ctranslate2": theirs, "ctranslate2_peak_rss_mb": rss,
                            "tfnmt_over_best_ctranslate2": round(
                                mine[quickest]["tokens_per_second"] / best, 2)}
                    cells.append(cell)
                    log(json.dumps(cell))
    return cells


def markdown(cells):
    configs = list(cells[0]["ctranslate2"]) if cells else []
    # Cells recorded before tfnmt had several configurations hold float32 with XLA only.
    mine = list(cells[0].get("tfnmt", {"float32_xla": None})) if cells else []
    head = (["shape", "batch", "beam"] + [f"tfnmt {c}" for c in mine]
            + [f"CT2 {c}" for c in configs] +
            ["tfnmt / best CT2", "tfnmt RSS (MB)", "CT2 RSS (MB)"])
    rows = [[c["shape"], c["batch"], c["beam"]]
            + [c.get("tfnmt", {"float32_xla": c["tfnmt_tokens_per_second"]})[k] for k in mine]
            + [c["ctranslate2"][k] for k in configs]
            + [c["tfnmt_over_best_ctranslate2"], c["tfnmt_peak_rss_mb"],
               c["ctranslate2_peak_rss_mb"]] for c in cells]
    return "\n".join(markdown_table(head, rows)) + "\n"


def ctranslate2_rows(run, checkpoint, name, sentences, references, batch_sizes, beam_sizes,
                     length_penalty, compute_types, threads, repeats):
    """Benchmark rows of CTranslate2 on a trained AT run's converted weights, on the same
    sentences as its tfnmt rows: SentencePiece in Python, length-sorted batches, one output
    limit per batch (the largest of its sentences' tfnmt limits: CTranslate2 takes one),
    CTranslate2's own length normalisation (length ** alpha) in beam search."""
    import ctranslate2

    max_length = run.model.max_length
    source_sp = sentencepiece.SentencePieceProcessor(model_file=run.source_vocab)
    target_sp = sentencepiece.SentencePieceProcessor(model_file=run.target_vocab)
    options = ctranslate2_export.decoding_options(max_length)
    rows = []
    with tempfile.TemporaryDirectory() as model_dir:
        path = ctranslate2_export.convert(run, checkpoint, model_dir)
        for compute in compute_types:
            for count in threads:
                translator = ctranslate2.Translator(model_dir, device="cpu",
                                                    compute_type=compute, intra_threads=count,
                                                    inter_threads=1)
                for beam in beam_sizes:
                    for batch in batch_sizes:
                        def translate():
                            pieces = [source_sp.encode(s, out_type=str)[: max_length - 1]
                                      for s in sentences]
                            order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
                            out = [""] * len(pieces)
                            for start in range(0, len(order), batch):
                                index = order[start:start + batch]
                                limit = max(ctranslate2_export.max_decoding_length(
                                    pieces[i], max_length) for i in index)
                                results = translator.translate_batch(
                                    [pieces[i] for i in index], beam_size=beam,
                                    length_penalty=length_penalty,
                                    **dict(options, max_decoding_length=limit))
                                for i, result in zip(index, results):
                                    out[i] = target_sp.decode(result.hypotheses[0])
                            return out

                        hyps = translate()  # warm-up
                        passes = []
                        for _ in range(repeats):
                            start = time.perf_counter()
                            hyps = translate()
                            passes.append(time.perf_counter() - start)
                        row = {"run": name, "run_dir": run.run_dir, "checkpoint": path,
                               "decoding": (f"CTranslate2 {compute} {count}thr "
                                            + ("greedy" if beam == 1 else f"beam {beam}")),
                               "method": "ctranslate2", "rescore_run": None, "beam": beam,
                               "xla": None, "batch": batch,
                               **timing_fields(passes, len(sentences),
                                               sum(len(h.split()) for h in hyps))}
                        if references:
                            row["bleu"] = round(
                                sacrebleu.corpus_bleu(hyps, [references]).score, 2)
                        rows.append(row)
    return rows
