"""Beam search's exact stop rule against fairseq's (a sentence stops once it has k finished
hypotheses), on a trained run (not part of the suite; run on an idle CPU):
python tests/perf/beam_stop_rule.py <run_dir> <source> <reference>

The run's averaged checkpoint, beam 4, length penalty 1.0, XLA, batch 1 and 32; each setting
timed twice after a warm-up pass (the faster kept), one process. fairseq's rule is beam_search
with one more line in its stop condition, made here from its source."""

import inspect
import sys
import textwrap
import time

import sacrebleu

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.decoding import search
from tfnmt.inference.translator import resolve_method, Translator

run_dir, source_path, reference_path = sys.argv[1:4]
sources = open(source_path, encoding="utf-8").read().splitlines()
references = open(reference_path, encoding="utf-8").read().splitlines()
run = runs.load(run_dir)
model, _ = runs.restore_model(run, "averaged")
tokenizers = run.tokenizers()
exact = search.beam_search
code = textwrap.dedent(inspect.getsource(exact))
line = "        done |= alive_logp[:, 0] <= NEG / 2\n"
assert line in code
namespace = dict(vars(search))
exec(code.replace(line, line + "        done |= worst_finished > NEG / 2\n"), namespace)
RULES = {"exact": exact, "k finished": namespace["beam_search"]}
for batch in (1, 32):
    first = None
    for name, rule in RULES.items():
        search.beam_search = rule
        config = resolve_method(DecodeConfig(method="auto", beam_size=4, length_penalty=1.0,
                                             batch_size=batch, xla=True), run)
        translator = Translator(model, *tokenizers, config, run.model.max_length)
        translator.translate(sources)
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            out = translator.translate(sources)
            best = min(best, time.perf_counter() - start)
        hyps = [o[0][0] for o in out]
        first = first or hyps
        print(f"batch {batch:2d} | {name:10s} | {best:6.2f} s | BLEU "
              f"{sacrebleu.corpus_bleu(hyps, [references]).score:.2f} | same as exact "
              f"{sum(a == b for a, b in zip(hyps, first))}/{len(hyps)}", flush=True)
    search.beam_search = exact
