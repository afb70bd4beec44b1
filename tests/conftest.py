"""Shared fixtures: a seeded generator and a lazy, CI-enforced torch import; the tiny training run
the config, trainer and checkpoint-state tests share (``from conftest import TINY``)."""
import os

import numpy as np
import pytest

#: TrainConfig options of a tiny run: a GRU with 8 units, 40 steps of the memory task (well under a second)
TINY = dict(task="memory", cell="gru", hidden_size=8, batch_size=16, steps=40, eval_every=10, eval_size=64)


@pytest.fixture
def rng():
    """A fresh seeded generator per test (never the global NumPy state)."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def torch():
    """torch in float64 with 2 threads; skipped only where torch is not required.

    With NUMPY_RNN_REQUIRE_TORCH=1 (CI) a missing torch is a failure, never a skip.
    """
    try:
        import torch as _torch
    except ImportError:
        if os.environ.get("NUMPY_RNN_REQUIRE_TORCH") == "1":
            pytest.fail("torch is required (NUMPY_RNN_REQUIRE_TORCH=1) but not installed")
        pytest.skip("torch not installed")
    _torch.set_num_threads(2)
    return _torch
