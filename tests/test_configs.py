"""Every flag file in configs/ parses with the training flags and builds a valid model."""

import glob
import os

import pytest

from .conftest import REPO


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "*.flags"))))
def test_config_parses_and_builds(path, multi30k_sample):
    from absl import flags

    import tfnmt.train as train

    argv = ["train", f"--flagfile={path}", f"--vocab={multi30k_sample['vocab']}"]
    flag_values = flags.FLAGS
    old_cwd = os.getcwd()
    os.chdir(REPO)  # flag files name each other relative to the repository
    try:
        flag_values.unparse_flags()
        flag_values(argv)
        model, data, train_config = train.configs_from_flags()
    finally:
        flag_values.unparse_flags()
        os.chdir(old_cwd)
    from tfnmt.models import build_model

    assert build_model(model).count_params() > 0
    assert data.train_source and train_config.train_steps > 0
