"""The guard, the champion rule, and the per-epoch metric names the MLflow UI compares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ddnn.cost import ExitCosts
from training.jobs.common import collapsed, epoch_metric_names
from training.jobs.ddnn import TrainedDDNN
from training.jobs.evaluate import EvaluatedDDNN
from training.jobs.register import ChampionRefusedError, choose_champion
from training.records import WindowRecord

pytestmark = pytest.mark.unit


def test_guard_needs_a_clear_margin_below_the_best_constant() -> None:
    assert collapsed(0.97, 1.0, margin=0.05)
    assert not collapsed(0.94, 1.0, margin=0.05)
    assert collapsed(float("nan"), 1.0, margin=0.05)


def candidate(w_local: float, val_best: float, bad: list[str]) -> EvaluatedDDNN:
    ddnn = TrainedDDNN(w_local, torch.nn.Module(), {}, None, Path(), bad)  # type: ignore[arg-type]
    empty = np.zeros(0)
    record = WindowRecord(
        "fold", 0, 0, w_local, empty, ExitCosts(empty, empty), {}, {}, {}, empty, empty, {}
    )
    record.val_best_cost = val_best
    return EvaluatedDDNN(ddnn, None, record)  # type: ignore[arg-type]


def test_champion_is_the_best_healthy_pair_and_collapse_is_refused() -> None:
    pairs = [candidate(0.9, 1.0, []), candidate(0.8, 0.5, ["remote"]), candidate(0.1, 0.9, [])]
    assert choose_champion(pairs).ddnn.w_local == 0.1
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
