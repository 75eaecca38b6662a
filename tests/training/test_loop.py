"""The joint training step: a tiny DDNN trains in seconds and its joint loss goes down."""

from __future__ import annotations

import pytest
import torch

from ddnn.config import CostConfig, DDNNConfig
from ddnn.model import DDNN
from tests.factories import random_windows
from training.config import TrainConfig
from training.loop import fit, learning_rate, seed_everything, validate
from training.objectives import ExitCost

pytestmark = pytest.mark.unit


def tensors(n: int, config: DDNNConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = random_windows(n, config.n_steps, config.n_vnfs, seed)
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def test_tiny_ddnn_joint_loss_goes_down(tiny_config: DDNNConfig, cost: CostConfig) -> None:
    seed_everything(0)
    model = DDNN(tiny_config)
    train, val = tensors(256, tiny_config, 0), tensors(64, tiny_config, 1)
    result = fit(model, train, val, ExitCost(0.5, cost), TrainConfig(epochs=6, batch_size=32))
    first, best = result.history[0]["train_joint"], min(h["train_joint"] for h in result.history)
    assert best < 0.8 * first
    assert result.best_val == pytest.approx(min(h["val_joint"] for h in result.history))


def test_fit_restores_the_best_epoch_weights(tiny_config: DDNNConfig, cost: CostConfig) -> None:
    seed_everything(0)
    model = DDNN(tiny_config)
    train, val = tensors(128, tiny_config, 0), tensors(32, tiny_config, 1)
    objective = ExitCost(0.9, cost)
    result = fit(model, train, val, objective, TrainConfig(epochs=3, batch_size=32))
    assert validate(model, val, objective)["joint"] == pytest.approx(result.best_val, rel=1e-5)


def test_training_is_reproducible_for_a_seed(tiny_config: DDNNConfig, cost: CostConfig) -> None:
    def run() -> float:
        seed_everything(3)
        model = DDNN(tiny_config)
        return fit(
            model,
            tensors(64, tiny_config, 0),
            tensors(32, tiny_config, 1),
            ExitCost(0.9, cost),
            TrainConfig(epochs=2, batch_size=16, seed=3),
        ).best_val

    assert run() == run()


def test_cosine_schedule_decays_to_five_percent() -> None:
    config = TrainConfig(epochs=11, lr=1e-3)
    assert learning_rate(0, config) == pytest.approx(1e-3)
    assert learning_rate(10, config) == pytest.approx(5e-5)
    assert learning_rate(5, TrainConfig(epochs=11, schedule="constant")) == 1e-3
