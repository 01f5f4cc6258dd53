"""How much the same compiled decode varies from pass to pass on this machine (not part of the
suite; run on an idle CPU):
python tests/perf/timing_noise.py <source> <sentences> <passes> <name>=<run_dir> ...

Every run's averaged checkpoint (beam 4, length penalty 1.0, batch 1, XLA, one intra-op
thread) translates the first sentences once untimed; then each pass times every run in turn
over the same sentences, so the runs' ratio per pass shows what drift a benchmark row's
alpha carries."""

import sys
import time

import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.inference.translator import resolve_method, Translator

tf.config.threading.set_intra_op_parallelism_threads(1)
source, count, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(source, encoding="utf-8") as f:
    sentences = f.read().splitlines()[:count]
translators = {}
for spec in sys.argv[4:]:
    name, _, path = spec.partition("=")
    run = runs.load(path)
    model, _ = runs.restore_model(run, "averaged")
    config = resolve_method(DecodeConfig(length_penalty=1.0, beam_size=4, batch_size=1,
                                         xla=True), run)
    translators[name] = Translator(model, *run.tokenizers(), config, run.model.max_length,
                                   None, None)
    translators[name].translate(sentences)
seconds = {name: [] for name in translators}
for _ in range(passes):
    for name, translator in translators.items():
        start = time.perf_counter()
        translator.translate(sentences)
        seconds[name].append(time.perf_counter() - start)
    print(" | ".join(f"{name} {s[-1]:.3f} s" for name, s in seconds.items()), flush=True)
first = next(iter(seconds))
for name, s in seconds.items():
    ratios = [a / b for a, b in zip(seconds[first], s)]
    print(f"{name}: {min(s):.3f}-{max(s):.3f} s (max/min {max(s) / min(s):.2f}); {first} / "
          f"{name} per pass {min(ratios):.2f}-{max(ratios):.2f}")
