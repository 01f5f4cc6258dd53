"""CTranslate2's side of `side_by_side`, importable without TensorFlow: the forced-length
protocol's inputs, and the timing that runs in a child process of its own, so its peak RSS is
CTranslate2's alone (the child imports neither TensorFlow nor Keras)."""

import json
import os
import subprocess
import sys
import time

import numpy as np

from tfnmt.core.provenance import peak_rss_mb

SOURCE_TOKENS = 16
STEPS = SOURCE_TOKENS + 1
VOCAB_SIZE = 8000
SPECIAL = ("<pad>", "<unk>", "<s>", "</s>")


class SyntheticVocabulary:
    """What the CTranslate2 converter reads of a tokenizer, for random weights: tfnmt's four
    special pieces, then "w4", "w5", ..."""

    def __init__(self, size):
        self.vocab_size = size

    def pieces(self, ids):
        return [SPECIAL[i] if i < len(SPECIAL) else f"w{i}" for i in ids]


def sources(batch, seed=0):
    """[batch, SOURCE_TOKENS] random ids of ordinary pieces (no special ones)."""
    return np.random.default_rng(seed).integers(8, VOCAB_SIZE, size=(batch, SOURCE_TOKENS))


def fastest(call, repeats):
    """The fastest of `repeats` timed calls after one warm-up call (compiles, allocates)."""
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def time_ctranslate2(model_dir, batch, beam, compute_type, threads, repeats):
    """tokens/s of CTranslate2 on the converted model, and whether this process had loaded
    TensorFlow (it must not have: its peak RSS would be TensorFlow's too)."""
    import ctranslate2

    translator = ctranslate2.Translator(model_dir, device="cpu", compute_type=compute_type,
                                        intra_threads=threads, inter_threads=1)
    vocabulary = SyntheticVocabulary(VOCAB_SIZE)
    pieces = [vocabulary.pieces(row.tolist()) for row in sources(batch)]
    seconds = fastest(lambda: translator.translate_batch(
        pieces, beam_size=beam, max_batch_size=batch, min_decoding_length=STEPS,
        max_decoding_length=STEPS, suppress_sequences=[["<pad>"], ["<s>"]]), repeats)
    return {"tokens_per_second": round(batch * STEPS / seconds, 1),
            "peak_rss_mb": peak_rss_mb(), "tensorflow_loaded": "tensorflow" in sys.modules}


def in_child(module, function, **kwargs):
    """Runs tfnmt.evaluation.<module>.<function>(**kwargs) in a fresh interpreter; returns its
    dict."""
    code = (f"import json, sys; from tfnmt.evaluation import {module}; "
            f"print(json.dumps({module}.{function}(**json.loads(sys.stdin.read()))))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(kwargs),
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{function}({kwargs}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
