"""What translating a file once costs with mask-predict under XLA, compile included (not part
of the suite; run on an idle CPU):
python tests/perf/mask_predict_compile.py RUN_DIR SOURCE_FILE BATCH [--coarse] [--one_program]

Loads the run's averaged weights into a Translator (I = 4, 5 lengths, XLA; one intra-op
thread at batch 1) and translates SOURCE_FILE twice: the first pass compiles a program per
source width, the second reuses them. Prints both wall times, the process's peak RSS and
whether the passes agree. --coarse (on a checkout with iterative.packed_widths: d438285, or
since session 41) narrows packed rows to 5 x the single-candidate buckets instead. --one_program runs the
translator's one-program form (a branch per width, what a SavedModel holds) instead of its two
stages with the width chosen on the host (translator.StagedMaskPredict)."""

import sys
import time

import tensorflow as tf

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.core.provenance import peak_rss_mb
from tfnmt.data.pipeline import padded_lengths
from tfnmt.decoding import iterative
from tfnmt.inference.translator import Translator

run_dir, source_file, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
if batch == 1:
    tf.config.threading.set_intra_op_parallelism_threads(1)
if "--coarse" in sys.argv:
    if not hasattr(iterative, "packed_widths"):  # else the patch below would change nothing
        sys.exit("error: --coarse needs a checkout with iterative.packed_widths")
    iterative.packed_widths = lambda limit: [5 * w for w in padded_lengths(256)
                                             if 5 * w < limit] + [limit]
run = runs.load(run_dir)
model, _ = runs.restore_model(run, "averaged")
source_tokenizer, target_tokenizer = run.tokenizers()
config = DecodeConfig(method="mask_predict", iterations=4, length_beam=5, batch_size=batch,
                      xla=True)
translator = Translator(model, source_tokenizer, target_tokenizer, config, run.model.max_length)
if "--one_program" in sys.argv:
    translator._decode = translator.decode_fn
sentences = [line.rstrip("\n") for line in open(source_file, encoding="utf-8")]
start = time.time()
first = translator.translate(sentences)
middle = time.time()
second = translator.translate(sentences)
end = time.time()
print(f"batch {batch}{' one program' if '--one_program' in sys.argv else ''}: first pass {middle - start:.1f} s (compiles), second {end - middle:.1f} s, "
      f"peak RSS {peak_rss_mb()} MB, same output {first == second}")
