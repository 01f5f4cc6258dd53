"""Where HRT's time goes at batch 1, against the teacher's beam search (not part of the suite;
run on an idle CPU):
python tests/perf/hrt_batch1.py <teacher_run> <hrt_run> <source> [sentences] [beam]

Real sentences one at a time (XLA, length penalty 1.0, the runs' averaged checkpoints, or
latest without one): ms a sentence for the teacher's beam search, HRT's whole decode (Skip-AT
beam + Skip-CMLM fill) and its Skip-AT search alone, with the mean number of loop steps of each
search (counted in a separate, uncompiled pass). Then forced lengths on a 16-token source:
the cost of a loop step and what a call pays before its first step (encoder included), so
the batch-1 ratio can be read as (fixed + steps x step) of one over the other's."""

import sys

import numpy as np
import tensorflow as tf
from timing import best_ms

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.data.pipeline import bucket_length
from tfnmt.data.tokenizer import EOS_ID
from tfnmt.decoding import common, search
from tfnmt.decoding.iterative import SkipAT
from tfnmt.evaluation.benchmark import time_translation
from tfnmt.inference.translator import resolve_method, Translator

teacher_dir, hrt_dir, source_path = sys.argv[1:4]
count = int(sys.argv[4]) if len(sys.argv) > 4 else 100
beam = int(sys.argv[5]) if len(sys.argv) > 5 else 4
sentences = open(source_path, encoding="utf-8").read().splitlines()[:count]


def load(run_dir):
    run = runs.load(run_dir)
    which = "averaged" if tf.train.latest_checkpoint(f"{run.checkpoint_dir}/averaged") else "latest"
    return run, runs.restore_model(run, which)[0]


def translator(run, model, xla):
    config = resolve_method(DecodeConfig(batch_size=1, beam_size=beam, length_penalty=1.0,
                                         method="auto", xla=xla), run)
    return Translator(model, *run.tokenizers(), config, run.model.max_length)


(teacher_run, teacher), (hrt_run, hrt) = load(teacher_dir), load(hrt_dir)
k = hrt_run.train.settings.hrt_chunk
skip = SkipAT(hrt, k, hrt_run.tokenizers()[1].piece_id(f"<bos_{k}>"))
a, b = 1.5, 10  # DecodeConfig's max_length_a, max_length_b


@tf.function(jit_compile=True, autograph=False)
def skip_at_only(source):
    """The Skip-AT stage of hybrid_regressive_decode, as the translator sizes it."""
    width = source.shape[1]
    limit = bucket_length(min(int(np.floor(np.float32(a) * np.float32(width) + np.float32(b))),
                              hrt.config.max_length), hrt.config.max_length)
    limits = common.length_limits(source, limit, a, b)
    return search.beam_search(skip, source, -(-limit // k), -(-limits // k), beam, 1.0)["ids"]


def loop_steps(run, model):
    """Mean loop steps a sentence (model.step calls counted in an uncompiled pass)."""
    calls = tf.Variable(0)
    step = model.step

    def counted(*args, **kwargs):
        calls.assign_add(1)
        return step(*args, **kwargs)

    model.step = counted
    try:
        plain = translator(run, model, xla=False)
        counts = []
        for _, source in plain.batches(plain.encode(sentences)):
            calls.assign(0)
            plain.translate_ids(source)
            counts.append(int(calls.numpy()))
    finally:
        del model.step  # the class's own again
    return float(np.mean(counts))


teacher_xla, hrt_xla = translator(teacher_run, teacher, True), translator(hrt_run, hrt, True)
batches = [tf.constant(s) for _, s in teacher_xla.batches(teacher_xla.encode(sentences))]


def per_sentence(fn):
    return sum(best_ms(fn, s, repeats=3) for s in batches) / len(batches)


rows = [("teacher beam search", per_sentence(teacher_xla.decode_fn),
         loop_steps(teacher_run, teacher)),
        ("HRT whole decode", per_sentence(hrt_xla.decode_fn), loop_steps(hrt_run, hrt)),
        ("HRT Skip-AT alone", per_sentence(skip_at_only), None)]
print(f"{len(batches)} sentences of {source_path}, batch 1, beam {beam}, XLA")
for name, ms, steps in rows:
    print(f"  {name:20s} {ms:7.2f} ms a sentence" + (f", {steps:.2f} loop steps" if steps else ""))
print(f"  ratio teacher / HRT: {rows[0][1] / rows[1][1]:.2f}; Skip-CMLM fill "
      f"{rows[1][1] - rows[2][1]:.2f} ms")
# As tfnmt.benchmark times a row: translate() over all sentences (tokenize, decode, detokenize),
# the fastest of `repeats` passes, against the sum of each sentence's fastest decode above.
for repeats in (1, 3):
    timed = [min(time_translation(t, sentences, repeats)[0]) * 1000 / len(batches)
             for t in (teacher_xla, hrt_xla)]
    print(f"  translate() as the benchmark times it, best of {repeats}: teacher "
          f"{timed[0]:.2f}, HRT {timed[1]:.2f} ms a sentence, ratio {timed[0] / timed[1]:.2f}")

source = np.full([1, 16], 0, np.int32)
source[0, :15] = np.random.default_rng(0).integers(10, teacher.config.vocab_size, 15)
source[0, 15] = EOS_ID
source = tf.constant(source)
for name, model, limit in (("teacher", teacher, 32), ("Skip-AT", skip, 16)):
    def forced(steps):
        return tf.function(lambda s: search.beam_search(model, s, limit, tf.fill([1], steps),
                                                        beam, 1.0)["ids"],
                           jit_compile=True, autograph=False)
    one, many = best_ms(forced(1), source, repeats=30), best_ms(forced(9), source, repeats=30)
    step = (many - one) / 8
    print(f"  forced lengths, {name}: {step:.2f} ms a step, {one - step:.2f} ms before the "
          f"first step (1 step {one:.2f} ms, 9 steps {many:.2f} ms)")
