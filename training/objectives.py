"""What each model is trained on, as `Objective`s of the one training loop (training.loop).

- `ExitCost`: the joint cost of Eq. 7 over the exits a model has (the DDNN: both; a centralized
  baseline: the remote exit only), early-stopped on the joint cost (the remote cost for models
  without a local exit). An optional warm-up trains the first epochs on a symmetric cost.
- `NetworkLoss`: a plain loss of a network's output against a target (the offloaders: BCE on
  the paper's labels for the classifier, `benefit_criterion` on the standardised benefit for
  the regressor), early-stopped on the same loss.

The regressor's losses (OffloaderTraining.benefit_loss): Huber by default (the benefit is
heavy-tailed); two levers of issue 10, off by default:
- quantile: the pinball loss at tau (`pinball_loss`): the network predicts the benefit's
  conditional tau-quantile, robust to the tail, still in benefit units once de-standardised;
- ranking: Huber (which keeps the scale, so a threshold at C_T keeps its meaning) plus a
  weighted pairwise logistic ranking loss (`pairwise_ranking_loss`, RankNet): what the gap
  closed measures is the order of the scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from ddnn.config import CostConfig
from ddnn.losses import joint_loss
from training.config import OffloaderTraining

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (output, target) -> loss


@dataclass(frozen=True)
class ExitCost:
    w_local: float
    cost: CostConfig
    warmup_epochs: int = 0  # epochs with c1 = c2 (a symmetric cost) before Eq. 3

    def cost_at(self, epoch: int | None) -> CostConfig:
        if epoch is not None and epoch < self.warmup_epochs:
            return CostConfig(c1=self.cost.c2, c2=self.cost.c2)
        return self.cost

    def loss(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, epoch: int | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        # forward on both exits, then the joint cost loss (Eq. 7)
        return joint_loss(model(inputs), targets, self.w_local, self.cost_at(epoch))

    def selection(self, parts: dict[str, float]) -> float:
        return parts.get("joint", parts["remote"])


@dataclass(frozen=True)
class NetworkLoss:
    criterion: Criterion

    def loss(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, epoch: int | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        value = self.criterion(model(inputs), targets)
        return value, {"loss": float(value.detach())}

    def selection(self, parts: dict[str, float]) -> float:
        return parts["loss"]


def pinball_loss(predicted: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """The quantile (pinball) loss at tau, mean over the batch: tau * (t - p) where the target
    is above the prediction, (1 - tau) * (p - t) where below; minimised by the tau-quantile."""
    error = target - predicted
    return torch.maximum(tau * error, (tau - 1.0) * error).mean()


def pairwise_ranking_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """RankNet's logistic loss over the batch's ordered pairs: softplus(-(s_i - s_j)) for each
    pair with target_i > target_j, averaged over those pairs (0 without one)."""
    ordered = target[:, None] > target[None, :]  # (B, B): i ranks above j
    if not bool(ordered.any()):
        return scores.sum() * 0.0  # keeps the graph
    margins = scores[:, None] - scores[None, :]  # (B, B): s_i - s_j
    return F.softplus(-margins[ordered]).mean()


def huber_and_ranking(
    predicted: torch.Tensor, target: torch.Tensor, ranking_weight: float
) -> torch.Tensor:
    """Huber on the values (the scale) plus ranking_weight x the pairwise ranking loss (the
    order)."""
    ranking = pairwise_ranking_loss(predicted, target)
    return F.huber_loss(predicted, target) + ranking_weight * ranking


def benefit_criterion(training: OffloaderTraining) -> Criterion:
    """The cost_aware regressor's loss on the standardised benefit (training.benefit_loss)."""
    if training.benefit_loss == "quantile":
        return partial(pinball_loss, tau=training.benefit_quantile)
    if training.benefit_loss == "ranking":
        return partial(huber_and_ranking, ranking_weight=training.ranking_weight)
    return F.huber_loss
