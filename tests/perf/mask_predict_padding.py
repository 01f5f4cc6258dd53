"""How much of a trained CMLM's mask-predict work is padding (not part of the suite; a few
seconds of CPU): python tests/perf/mask_predict_padding.py RUN_DIR SOURCE_FILE

Until session 41 every pass of mask_predict ran a sentence's length_beam (5) candidates as rows
of one width: the smallest bucket (data.pipeline) holding the batch's longest candidate; now
it packs them into one row (iterative.packed_widths). This takes the candidate lengths the
run's length classifier gives on SOURCE_FILE and counts, for batch 1 and for batches of 32
sentences sorted by source length (as the translator groups them), the real positions against
the positions the passes compute: unpacked at bucket widths (multiples of 8 up to 64) and at
exact widths; packed at packed_widths (what mask_predict runs) and at other widths."""

import sys

import numpy as np
import sentencepiece as spm
import tensorflow as tf

from tfnmt import runs
from tfnmt.data.pipeline import bucket_length
from tfnmt.data.tokenizer import EOS_ID
from tfnmt.decoding.common import NEG
from tfnmt.decoding.iterative import packed_widths

LENGTH_BEAM, BATCH = 5, 32

run_dir, source_file = sys.argv[1:3]
run = runs.load(run_dir)
model = runs.restore_model(run, "averaged")[0]
pieces = spm.SentencePieceProcessor(model_file=f"{run_dir}/vocab/source.model")
sources = [np.array(pieces.encode(line.strip()) + [EOS_ID], np.int32)
           for line in open(source_file, encoding="utf-8")]
lengths = []
for start in range(0, len(sources), 64):
    chunk = sources[start:start + 64]
    batch = np.zeros([len(chunk), max(len(s) for s in chunk)], np.int32)
    for row, ids in enumerate(chunk):
        batch[row, :len(ids)] = ids
    encoded, mask = model.encode(tf.constant(batch))
    logp = tf.cast(model.length_logits(encoded, mask), tf.float32).numpy()
    logp[:, :2] = NEG  # as mask_predict: at least one token and EOS
    lengths.append(np.argsort(-logp, axis=1, kind="stable")[:, :LENGTH_BEAM])
lengths = np.maximum(np.concatenate(lengths), 2)
real = lengths.sum()
order = np.argsort([len(s) for s in sources], kind="stable")
groups = [order[g:g + BATCH] for g in range(0, len(order), BATCH)]
print(f"{len(sources)} sentences, {LENGTH_BEAM} candidates each, mean candidate length "
      f"{lengths.mean():.2f}, mean spread (longest - shortest) of a sentence's candidates "
      f"{(lengths.max(1) - lengths.min(1)).mean():.2f}")
print("| widths | real / computed positions, batch 1 | batch 32 |\n|---|---|---|")
LIMIT = model.config.max_length
for name, width in (("buckets (until session 41)", lambda n: bucket_length(n, LIMIT)),
                    ("exact longest candidate", lambda n: n)):
    one = sum(LENGTH_BEAM * width(int(row.max())) for row in lengths)
    many = sum(len(g) * LENGTH_BEAM * width(int(lengths[g].max())) for g in groups)
    print(f"| {name} | {real / one:.2f} | {real / many:.2f} |")
# Packed: a sentence's candidates one after the other in one row, the rows as wide as the
# batch's longest sum of lengths, rounded up as named.
for name, width in (("packed, packed_widths (what mask_predict runs)",
                     lambda n: min(w for w in packed_widths(LENGTH_BEAM * LIMIT) if w >= n)),
                    ("packed, bucket widths times 5", lambda n: LENGTH_BEAM * bucket_length(
                         -(-n // LENGTH_BEAM), LIMIT)),
                    ("packed, multiples of 8", lambda n: -(-n // 8) * 8),
                    ("packed, exact", lambda n: n)):
    one = sum(width(int(row.sum())) for row in lengths)
    many = sum(len(g) * width(int(lengths[g].sum(1).max())) for g in groups)
    print(f"| {name} | {real / one:.2f} | {real / many:.2f} |")
