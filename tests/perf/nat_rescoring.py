"""What a NAT's length candidates and their AT rescoring cost, beside the AT's own beam search
(not part of the suite; run on an idle CPU): python tests/perf/nat_rescoring.py

Random small models (d 256, 3-3, vocabulary 8000): a hint-based NART and the Transformer that
rescores it. Sources of 12 tokens + EOS padded to a bucket of 16; the AT's beam 4 forced to 13
steps (the NAT's centre length, so both produce the same lengths); the NAT with 1 and 9 length
candidates (width M + C + B), and 9 rescored, XLA, batch 1 and 32, one process. The FLOPs column
counts the matmuls only (2 per multiply-add), the GFLOP/s column is their rate."""

import numpy as np
import tensorflow as tf

from tfnmt.core.config import ModelConfig
from tfnmt.decoding import parallel, search
from tfnmt.models import build_model

from timing import best_ms  # tests/perf/timing.py

D, FFN, LAYERS, VOCAB, REAL, BUCKET, BEAM = 256, 1024, 3, 8000, 13, 16, 4


# Matmul MFLOP per target position (2 FLOPs a multiply-add): per layer self-attention (4 d^2
# multiply-adds), cross-attention queries and outputs (2 d^2; the memory's keys and values are
# per sentence), FFN (2 d FFN); the NART adds positional attention (4 d^2 a layer); the output
# layer d V.
AT_POSITION = 2 * LAYERS * (6 * D * D + 2 * D * FFN) / 1e6
NAT_POSITION = AT_POSITION + 2 * LAYERS * 4 * D * D / 1e6
OUTPUT = 2 * D * VOCAB / 1e6

teacher = build_model(ModelConfig.from_shape("small", vocab_size=VOCAB, dropout=0.0))
nat = build_model(ModelConfig.from_shape("small", vocab_size=VOCAB, dropout=0.0,
                                         architecture="nart"))
rng = np.random.default_rng(0)
for batch in (1, 32):
    source = np.zeros([batch, BUCKET], np.int32)
    source[:, :REAL - 1] = rng.integers(8, VOCAB, size=[batch, REAL - 1])
    source[:, REAL - 1] = 3
    source = tf.constant(source)
    width = nat.length_bound(BUCKET, 4)
    beam = tf.function(lambda s: search.decode(teacher, s, REAL, BEAM, 1.0, max_length_a=0.0,
                                               max_length_b=REAL, min_length=REAL),
                       jit_compile=True)
    rows = {
        f"AT beam {BEAM} ({REAL} steps)": (beam, BEAM * REAL * (AT_POSITION + OUTPUT)),
        "NAT 1 length": (tf.function(lambda s: parallel.nat_translate(nat, s, width, 0),
                                     jit_compile=True),
                         (width - 4) * (NAT_POSITION + OUTPUT)),
        "NAT 9 lengths": (tf.function(lambda s: parallel.nat_translate(nat, s, width, 4),
                                      jit_compile=True),
                          9 * width * (NAT_POSITION + OUTPUT)),
        "NAT 9 lengths, AT-rescored": (
            tf.function(lambda s: parallel.nat_translate(nat, s, width, 4, teacher),
                        jit_compile=True),
            9 * width * (NAT_POSITION + OUTPUT + AT_POSITION + OUTPUT)),
    }
    reference = None
    for name, (fn, mflop) in rows.items():
        ms = best_ms(fn, source, repeats=15) / batch
        reference = reference or ms
        print(f"batch {batch:2d} | {name:28s} | {ms:7.2f} ms a sentence | alpha "
              f"{reference / ms:5.2f} | {mflop / 1e3:5.2f} GFLOP a sentence | "
              f"{mflop / ms:5.0f} GFLOP/s", flush=True)
