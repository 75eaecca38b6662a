"""The experiment helpers: C_T grid, offloader training, eta choice, curves, guard, champion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ddnn.config import DDNNConfig
from training.experiments import (
    ExitCosts,
    LatencyTable,
    OffloaderTraining,
    PolicyInputs,
    choose_eta,
    offloader_config,
    policy_curves,
    policy_metrics,
    train_classifier,
    train_cost_aware,
    transmission_cost_grid,
)
from training.jobs import (
    ChampionRefusedError,
    TrainedDDNN,
    choose_champion,
    collapsed,
    epoch_metric_names,
)
from training.report import Evaluation

pytestmark = pytest.mark.unit

N, K = 6, 2
TRAINING = OffloaderTraining(hidden=(16,), epochs=40, batch_size=64, lr=3e-3, weight_decay=0.0)


def learnable_costs(n: int, seed: int) -> tuple[torch.Tensor, ExitCosts]:
    """Windows whose mean level decides whether the cloud helps (benefit = 2 * level - 1)."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 1, size=n)
    inputs = level[:, None, None] + 0.05 * rng.standard_normal((n, N, K))
    remote = rng.uniform(0.5, 1.0, size=n)
    return torch.tensor(inputs, dtype=torch.float32), ExitCosts(remote + 2 * level - 1, remote)


def test_transmission_cost_grid_is_clipped_unique_and_sorted() -> None:
    grid = transmission_cost_grid(np.array([-3.0, -2.0, -1.0, 0.5, 1.0, 4.0]), (0.1, 0.3, 0.5, 0.9))
    assert grid.tolist() == [0.0, 2.5]  # three quantiles <= 0 collapse onto C_T = 0


def test_classifier_learns_the_paper_labels() -> None:
    config = offloader_config(DDNNConfig(n_steps=N, n_vnfs=K), TRAINING, "classifier", 0.5)
    net, metrics = train_classifier(
        config, learnable_costs(512, 0), learnable_costs(256, 1), TRAINING
    )
    assert metrics["val_balanced_accuracy"] > 0.9
    assert 0.6 < metrics["train_share_local_labels"] < 0.9  # local iff 2*level - 1 <= 0.5
    assert not net.training


def test_cost_aware_offloader_regresses_the_benefit() -> None:
    config = offloader_config(DDNNConfig(n_steps=N, n_vnfs=K), TRAINING, "cost_aware", 0.0)
    net, metrics = train_cost_aware(
        config, learnable_costs(512, 0), learnable_costs(256, 1), TRAINING
    )
    assert metrics["val_benefit_corr"] > 0.9
    x, costs = learnable_costs(256, 2)
    with torch.no_grad():
        predicted = net.score(x).numpy()
    assert abs(predicted.mean() - costs.benefit.mean()) < 0.2  # mapped back to cost units


def test_choose_eta_keeps_local_the_samples_the_cloud_would_not_help() -> None:
    u = np.linspace(0.0, 1.0, 100)
    costs = ExitCosts(local=np.where(u < 0.3, 1.0, 5.0), remote=np.full(100, 2.0))
    eta = choose_eta(u, costs, transmission_cost=0.5, points=21)
    assert np.mean(u < eta) == pytest.approx(0.3, abs=0.02)


def test_curves_span_both_ends_and_the_oracle_closes_the_whole_gap() -> None:
    rng = np.random.default_rng(0)
    test = ExitCosts(local=rng.uniform(0, 2, 50), remote=rng.uniform(0, 1, 50))
    inputs = PolicyInputs(
        test=test,
        confidence_u=rng.uniform(size=50),
        ml_masks=[rng.uniform(size=50) < p for p in (0.2, 0.5)],
        cost_aware_scores=test.benefit,  # a perfect regressor
        ct_grid=np.array([0.0, 0.5, 1.0]),
        eta_points=5,
    )
    curves = policy_curves(inputs)
    metrics = policy_metrics(curves, reference=float(test.remote.mean()))
    for curve in curves.values():
        assert curve[0, 0] == 0.0 and curve[-1, 0] == 1.0
    assert metrics["oracle"]["gap_closed"] == pytest.approx(1.0)
    assert metrics["random"]["gap_closed"] == pytest.approx(0.0)
    assert metrics["cost_aware"]["gap_closed"] > 0.5


def test_latency_summary_has_every_share_and_the_centralized_models() -> None:
    table = LatencyTable({}, {5: 40.0, 95: 3.0}, {"centralized_lstm": 43.0}, 42.46)
    assert table.summary() == {"5": 40.0, "95": 3.0, "centralized_lstm": 43.0}
    assert "| DDNN | 95 | 3.000 |" in table.markdown()


def test_guard_needs_a_clear_margin_below_the_best_constant() -> None:
    assert collapsed(0.97, 1.0, margin=0.05)
    assert not collapsed(0.94, 1.0, margin=0.05)
    assert collapsed(float("nan"), 1.0, margin=0.05)


def candidate(w_local: float, val_best: float, bad: list[str]) -> tuple[TrainedDDNN, Evaluation]:
    ddnn = TrainedDDNN(w_local, torch.nn.Module(), {}, None, Path(), bad)  # type: ignore[arg-type]
    empty = np.zeros(0)
    return ddnn, Evaluation(w_local, {}, {}, val_best, ExitCosts(empty, empty), empty, empty)


def test_champion_is_the_best_healthy_pair_and_collapse_is_refused() -> None:
    pairs = [candidate(0.9, 1.0, []), candidate(0.8, 0.5, ["remote"]), candidate(0.1, 0.9, [])]
    assert choose_champion(pairs)[0].w_local == 0.1
    with pytest.raises(ChampionRefusedError, match="collapsed exits"):
        choose_champion([pairs[1]])


def test_epoch_metrics_get_the_names_the_ui_compares() -> None:
    named = epoch_metric_names({"train_local": 1.0, "val_remote": 2.0, "val_joint": 3.0, "lr": 0.1})
    assert named == {
        "train_cost_local": 1.0,
        "val_cost_remote": 2.0,
        "val_loss_joint": 3.0,
        "lr": 0.1,
    }
