import numpy as np
import pytest

from tfnmt.core.config import DataConfig
from tfnmt.core.errors import UserError
from tfnmt.data.pipeline import bucket_length, make_dataset, padded_lengths
from tfnmt.data.tokenizer import EOS_ID, load_tokenizer


def test_padded_lengths_cover_max_length():
    assert padded_lengths(64) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert padded_lengths(100)[-1] == 100
    assert bucket_length(9, 64) == 16 and bucket_length(64, 64) == 64


@pytest.mark.parametrize("budget", [256, 1000])
def test_batches_respect_the_token_budget(multi30k_sample, budget):
    cfg = DataConfig(batch_tokens=budget, max_length=32, shuffle_buffer=500)
    ds = make_dataset(multi30k_sample["en"], multi30k_sample["de"], multi30k_sample["vocab"],
                      multi30k_sample["vocab"], cfg, training=True)
    sizes = padded_lengths(32)
    for batch in ds.take(60):
        src, tgt = batch["source"].numpy(), batch["target"].numpy()
        assert src.shape == tgt.shape and src.shape[1] in sizes
        assert src.size <= budget
        assert src.shape[0] == budget // src.shape[1] or src.shape[0] < budget // src.shape[1]
        for row in np.concatenate([src, tgt]):
            length = np.count_nonzero(row)
            assert row[length - 1] == EOS_ID and not row[length:].any()


def test_validation_pass_sees_every_pair_once(multi30k_sample):
    cfg = DataConfig(batch_tokens=512, max_length=128)
    ds = make_dataset(multi30k_sample["en"], multi30k_sample["de"], multi30k_sample["vocab"],
                      multi30k_sample["vocab"], cfg, training=False)
    assert sum(int(b["source"].shape[0]) for b in ds) == 2000


def test_drop_and_truncate_long_pairs(multi30k_sample):
    tok = load_tokenizer(multi30k_sample["vocab"])
    lengths = [len(x) + 1 for x in tok.tokenize(
        open(multi30k_sample["en"], encoding="utf-8").read().splitlines()).to_list()]
    targets = [len(x) + 1 for x in tok.tokenize(
        open(multi30k_sample["de"], encoding="utf-8").read().splitlines()).to_list()]
    limit = 12
    kept = sum(1 for s, t in zip(lengths, targets) if s <= limit and t <= limit)
    for mode, expected in (("drop", kept), ("truncate", 2000)):
        cfg = DataConfig(batch_tokens=512, max_length=limit, long_pairs=mode)
        ds = make_dataset(multi30k_sample["en"], multi30k_sample["de"], multi30k_sample["vocab"],
                          multi30k_sample["vocab"], cfg, training=False)
        batches = list(ds)
        assert sum(int(b["source"].shape[0]) for b in batches) == expected
        assert max(int(b["source"].shape[1]) for b in batches) <= limit


def test_budget_smaller_than_one_sequence_is_an_error(multi30k_sample):
    with pytest.raises(UserError, match="cannot hold one sequence"):
        make_dataset(multi30k_sample["en"], multi30k_sample["de"], multi30k_sample["vocab"],
                     multi30k_sample["vocab"], DataConfig(batch_tokens=100, max_length=128), True)
