"""How many row-steps a batch of 32 runs (as long as its longest output) against a batch that
halves whenever half of it has finished, from a trained run's own outputs (not part of the
suite): python tests/perf/batch_shrink_rows.py <run_dir> <source>

The run's averaged checkpoint, beam 4, length penalty 1.0, XLA, batches as the translator
makes them; an output's length is its best hypothesis's (EOS included)."""

import sys

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.inference.translator import resolve_method, Translator

run_dir, source_path = sys.argv[1:3]
sources = open(source_path, encoding="utf-8").read().splitlines()
run = runs.load(run_dir)
model, _ = runs.restore_model(run, "averaged")
config = resolve_method(DecodeConfig(method="auto", beam_size=4, length_penalty=1.0,
                                     batch_size=32, xla=True), run)
translator = Translator(model, *run.tokenizers(), config, run.model.max_length)
tokens = whole = halving = 0
for index, source in translator.batches(translator.encode(sources)):
    lengths = translator.translate_ids(source)["lengths"][: len(index), 0].numpy()
    tokens += int(lengths.sum())
    whole += source.shape[0] * int(lengths.max())
    rows = source.shape[0]
    for step in range(int(lengths.max())):
        while rows > 1 and int((lengths > step).sum()) <= rows // 2:
            rows //= 2
        halving += rows
print(f"output tokens {tokens}, row-steps as run {whole}, halving batches {halving} "
      f"({whole / halving:.2f}x fewer)")
