import random

import pytest

from tfnmt import runs
from tfnmt.config import DataConfig, ModelConfig, TrainConfig
from tfnmt.vocab import train_vocab

LETTERS = "abcdefghijkl"


@pytest.fixture(scope="session")
def reverse_task(tmp_path_factory):
    """A synthetic task: the target is the source's letters in reverse order."""
    out = tmp_path_factory.mktemp("reverse")
    rng = random.Random(7)
    pairs = []
    for _ in range(3000):
        words = [rng.choice(LETTERS) for _ in range(rng.randint(2, 8))]
        pairs.append((" ".join(words), " ".join(reversed(words))))
    paths = {}
    for split, chunk in (("train", pairs[:2800]), ("test", pairs[2800:])):
        for side, lang in ((0, "src"), (1, "tgt")):
            paths[f"{split}.{lang}"] = str(out / f"{split}.{lang}")
            with open(paths[f"{split}.{lang}"], "w", encoding="utf-8") as f:
                f.writelines(p[side] + "\n" for p in chunk)
    paths["vocab"] = train_vocab([paths["train.src"]], str(out / "spm"), vocab_size=24)
    return paths


def make_run(run_dir, task, model=None, batch_tokens=256, **train):
    model = model or ModelConfig.from_shape("tiny", dropout=0.0)
    from tfnmt.data.tokenizer import load_tokenizer

    model.vocab_size = load_tokenizer(task["vocab"]).vocab_size
    data = DataConfig(train_source=task["train.src"], train_target=task["train.tgt"],
                      source_vocab=task["vocab"], target_vocab=task["vocab"], batch_tokens=batch_tokens,
                      max_length=16, shuffle_buffer=1000)
    defaults = dict(train_steps=20, warmup_steps=10, xla=False, log_every=1000,
                    save_every=1000, eval_every=1000, learning_rate=3e-3)
    defaults.update(train)
    return runs.create_or_check(str(run_dir), model, data, TrainConfig(**defaults))
