"""A/B timing of whole translation (the Translator: tokenisation, bucketed batches, decoding,
detokenisation) of a trained autoregressive Transformer run, an earlier commit's code against
the working tree, in ONE process on the same weights and sentences, interleaved repeats
(ratios from one invocation). Run on an idle CPU from the repository root:
    python tests/perf/translate_ab.py <commit> <run_dir> <source file> [sentences] [checkpoint]
        [batch sizes]
Batch 1 and 32 (or the comma-separated batch sizes given), beam 4, length penalty 1.0, XLA;
prints one JSON line per batch size with both times, the ratio and whether the two translated
every sentence alike."""
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from old_code import old_package  # noqa: E402

commit, run_dir, source_file = sys.argv[1:4]
count = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
which = sys.argv[5] if len(sys.argv) > 5 else "best"
batch_sizes = [int(b) for b in (sys.argv[6] if len(sys.argv) > 6 else "1,32").split(",")]
sys.path.insert(0, old_package(commit))
sys.path.insert(0, os.getcwd())
import tfnmt_old.config  # noqa: E402
import tfnmt_old.data.tokenizer  # noqa: E402
import tfnmt_old.inference  # noqa: E402
import tfnmt_old.models  # noqa: E402
from tfnmt import runs  # noqa: E402
from tfnmt.core.config import DecodeConfig  # noqa: E402
from tfnmt.inference.translator import Translator  # noqa: E402
from tfnmt.models import named_weights  # noqa: E402

run = runs.load(run_dir)
if run.model.architecture != "transformer":
    sys.exit("translate_ab.py times autoregressive Transformer runs")
new_model, checkpoint = runs.restore_model(run, which)
old_model = tfnmt_old.models.build_model(tfnmt_old.config.from_dict(
    tfnmt_old.config.ModelConfig, dict(dataclasses.asdict(run.model), dropout=0.0)))
old_weights = tfnmt_old.models.named_weights(old_model)
for name, weight in named_weights(new_model).items():
    old_weights[name].assign(weight)
with open(source_file, encoding="utf-8") as f:
    sentences = [line.rstrip("\n") for line in f][:count]
print(json.dumps({"run": run_dir, "checkpoint": checkpoint, "commit": commit,
                  "sentences": len(sentences)}), flush=True)
source_vocab, target_vocab = run.source_vocab, run.target_vocab
new_tokenizers = run.tokenizers()
for batch in batch_sizes:
    settings = dict(beam_size=4, length_penalty=1.0, batch_size=batch, xla=True)
    translators = {
        "old": tfnmt_old.inference.Translator(
            old_model, tfnmt_old.data.tokenizer.load_tokenizer(source_vocab),
            tfnmt_old.data.tokenizer.load_tokenizer(target_vocab),
            tfnmt_old.config.DecodeConfig(**settings), run.model.max_length),
        "new": Translator(new_model, *new_tokenizers, DecodeConfig(**settings),
                          run.model.max_length)}
    outputs = {tag: t.translate(sentences) for tag, t in translators.items()}  # compiles
    times = {tag: [] for tag in translators}
    for _ in range(3):
        for tag, translator in translators.items():
            start = time.perf_counter()
            translator.translate(sentences)
            times[tag].append(time.perf_counter() - start)
    before, after = min(times["old"]), min(times["new"])
    print(json.dumps({f"batch {batch}, beam 4, XLA": {
        "old_s": round(before, 2), "new_s": round(after, 2), "speedup": round(before / after, 2),
        "same_translations": [r[0][0] for r in outputs["old"]] ==
                             [r[0][0] for r in outputs["new"]]}}), flush=True)
