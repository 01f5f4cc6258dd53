"""Shared fixtures. Two logical CPU devices are configured before TensorFlow starts, so
MirroredStrategy tests can run two replicas on one CPU."""

import os
import random
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MULTI30K = os.path.join(REPO, "..", "shared", "data", "multi30k")


def multi30k(split, lang):
    path = os.path.join(MULTI30K, f"{split}.{lang}")
    if not os.path.isfile(path):
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def multi30k_sample(tmp_path_factory):
    """The first 2,000 Multi30k En-De training pairs and a 300-piece joint vocabulary."""
    from tfnmt.vocab import train_vocab

    out = tmp_path_factory.mktemp("multi30k")
    paths = {}
    for lang in ("en", "de"):
        with open(multi30k("train", lang), encoding="utf-8") as f:
            lines = [next(f) for _ in range(2000)]
        paths[lang] = str(out / f"sample.{lang}")
        with open(paths[lang], "w", encoding="utf-8") as f:
            f.writelines(lines)
    paths["vocab"] = train_vocab([paths["en"], paths["de"]], str(out / "spm"), vocab_size=300)
    return paths


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(0)
    np.random.seed(0)
    yield


def run_module(module, *args, env=None, timeout=600, cwd=None):
    """Runs `python -m module args` and returns the CompletedProcess (text mode)."""
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or REPO)
