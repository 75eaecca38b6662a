"""Shared fixtures: tiny configurations and seeded models, so every test runs in seconds."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from ddnn.config import CostConfig, DDNNConfig
from ddnn.model import DDNN

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
torch.set_flush_denormal(True)

TINY_N = 12
TINY_K = 4


@pytest.fixture
def tiny_config() -> DDNNConfig:
    """Small N and K, small cloud: the same architecture at a size that trains in seconds.

    The exits start from random weights (not zero) so that untrained models already give
    sample-dependent outputs and gradients, which the tests of policies and gradient flow need.
    """
    return DDNNConfig(
        n_steps=TINY_N,
        n_vnfs=TINY_K,
        cloud_hidden=(16, 8),
        head_hidden=(16, 8, 4),
        zero_init_exit=False,
    )


@pytest.fixture
def cost() -> CostConfig:
    return CostConfig()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def tiny_ddnn(tiny_config: DDNNConfig) -> DDNN:
    torch.manual_seed(0)
    return DDNN(tiny_config).eval()
