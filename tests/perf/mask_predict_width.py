"""Mask-predict (I = 4, 5 length candidates) with its passes at the decode limit and every
position projected, against the lean passes (the candidates packed in rows as wide as the
smallest packed width holding the longest sum of lengths, only the re-predicted positions
projected after the first pass), beside the AT's beam 5 forced to the same length (not part
of the suite; run on an idle CPU): python tests/perf/mask_predict_width.py

Random small CMLM and Transformer (d 256, 3-3, vocabulary 8000); sources of 12 tokens + EOS in
a 16-wide bucket, so the decode limit is bucket(1.5 * 16 + 10) = 40; the length classifier's
bias puts the 5 candidates at 13-17 tokens. XLA, batch 1 and 32, one process. The limit passed
as a tensor keeps mask-predict on one width (5 x 40) with every position projected; as a
Python int (what the translator passes) it branches."""

import numpy as np
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.decoding import search
from tfnmt.decoding.iterative import mask_predict
from tfnmt.models import build_model

from timing import best_ms  # tests/perf/timing.py

VOCAB, LIMIT, REAL, CENTRE, MASK = 8000, 40, 13, 15, 4


cmlm = build_model(ModelConfig.from_shape("small", architecture="cmlm", vocab_size=VOCAB,
                                          dropout=0.0))
bias = np.full(cmlm.config.max_length + 1, -30.0, np.float32)
bias[CENTRE - 2:CENTRE + 3] = [1.0, 2.0, 3.0, 2.5, 1.5]
cmlm.length_predictor.kernel.assign(tf.zeros_like(cmlm.length_predictor.kernel))
cmlm.length_predictor.bias.assign(bias)
at = build_model(ModelConfig.from_shape("small", vocab_size=VOCAB, dropout=0.0))
rng = np.random.default_rng(0)
for batch in (1, 32):
    source = np.zeros([batch, 16], np.int32)
    source[:, :REAL - 1] = rng.integers(8, VOCAB, size=[batch, REAL - 1])
    source[:, REAL - 1] = 3
    source = tf.constant(source)
    rows = {
        "AT beam 5 (15 steps)": tf.function(
            lambda s: search.decode(at, s, LIMIT, 5, 1.0, max_length_a=0.0,
                                    max_length_b=CENTRE, min_length=CENTRE), jit_compile=True),
        "mask-predict, limit width": tf.function(
            lambda s: mask_predict(cmlm, s, MASK, 4, 5, tf.constant(LIMIT)), jit_compile=True),
        "mask-predict, lean": tf.function(
            lambda s: mask_predict(cmlm, s, MASK, 4, 5, LIMIT), jit_compile=True),
    }
    reference = None
    for name, fn in rows.items():
        ms = best_ms(fn, source, repeats=10) / batch
        reference = reference or ms
        print(f"batch {batch:2d} | {name:26s} | {ms:7.2f} ms a sentence | "
              f"alpha {reference / ms:5.2f}", flush=True)
