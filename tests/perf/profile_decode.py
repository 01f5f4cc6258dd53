"""Where a decode call's time goes, op by op (not part of the suite; run on an idle CPU):
python tests/perf/profile_decode.py <run_dir> <beam> <steps> [per_call] [batch=N] [int8] [1thr]
    [sentence=TEXT]

The run's averaged checkpoint (latest without one), `batch` random 16-token sources (1 by default), `steps` forced
steps, XLA (int8: at int8 precision; 1thr: one intra-op thread); with sentence=TEXT, the run's
own decoding of that sentence instead (its translator: HRT's two stages for an HRT run; `steps`
unused); 20 calls
traced with tf.profiler, then the traced events summed by (thread, name) and divided by the
calls: ms a call and occurrences a call, largest first (with per_call, the output table is laid
out in every call, as before keep_decoding_constants) (XLA's thunks carry the optimised HLO's
instruction names, e.g. `dot.79`, `wrapped_copy.6`; look them up in
fn.experimental_get_compiler_ir(source)(stage="optimized_hlo"))."""

import collections
import glob
import sys
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from tfnmt import runs
from tfnmt.core.config import DecodeConfig
from tfnmt.data.tokenizer import EOS_ID
from tfnmt.decoding import search
from tfnmt.inference.translator import resolve_method, Translator

CALLS = 20
options = sys.argv[4:]
if "1thr" in options:
    tf.config.threading.set_intra_op_parallelism_threads(1)
batch = int(next((o[6:] for o in options if o.startswith("batch=")), 1))
run = runs.load(sys.argv[1])
which = "averaged" if tf.train.latest_checkpoint(f"{run.checkpoint_dir}/averaged") else "latest"
model, _ = runs.restore_model(run, which, "int8" if "int8" in options else "float32")
beam, steps = int(sys.argv[2]), int(sys.argv[3])
if "per_call" in options:
    model.keep_decoding_constants(False)
source = np.zeros([batch, 16], np.int32)
source[:, :15] = np.random.default_rng(0).integers(10, model.config.vocab_size, [batch, 15])
source[:, 15] = EOS_ID
source = tf.constant(source)
decode = tf.function(lambda s: search.decode(model, s, 32, beam, 1.0, 0.0, steps,
                                             min_length=steps)["ids"],
                     jit_compile=True, autograph=False)
sentence = next((o[9:] for o in options if o.startswith("sentence=")), None)
if sentence is not None:
    config = resolve_method(DecodeConfig(batch_size=1, beam_size=beam, length_penalty=1.0,
                                         method="auto"), run)
    translator = Translator(model, *run.tokenizers(), config, run.model.max_length)
    source = tf.constant(next(translator.batches(translator.encode([sentence])))[1])
    decode = translator.decode_fn
for _ in range(5):
    tf.nest.map_structure(lambda t: t.numpy(), decode(source))
logdir = tempfile.mkdtemp()
tf.profiler.experimental.start(logdir)
for _ in range(CALLS):
    tf.nest.map_structure(lambda t: t.numpy(), decode(source))
tf.profiler.experimental.stop()
space = xplane_pb2.XSpace()
with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
    space.ParseFromString(f.read())
for plane in space.planes:
    names = {k: v.name for k, v in plane.event_metadata.items()}
    total, count = collections.Counter(), collections.Counter()
    for line in plane.lines:
        for event in line.events:
            key = (line.name[:20], names.get(event.metadata_id, "?"))
            total[key] += event.duration_ps
            count[key] += 1
    for (thread, name), ps in total.most_common(60):
        print(f"{ps / CALLS / 1e9:8.3f} ms/call {count[(thread, name)] / CALLS:7.1f}x "
              f"[{thread}] {name[:90]}")
