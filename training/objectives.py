"""What each model is trained on, as `Objective`s of the one training loop (training.loop).

- `ExitCost`: the joint cost of Eq. 7 over the exits a model has (the DDNN: both; a centralized
  baseline: the remote exit only), early-stopped on the joint cost (the remote cost for models
  without a local exit). An optional warm-up trains the first epochs on a symmetric cost.
- `NetworkLoss`: a plain loss of a network's output against a target (the offloaders: BCE on
  the paper's labels for the classifier, Huber on the standardised benefit for the regressor),
  early-stopped on the same loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ddnn.config import CostConfig
from ddnn.losses import joint_loss


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
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (output, target) -> loss

    def loss(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, epoch: int | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        value = self.criterion(model(inputs), targets)
        return value, {"loss": float(value.detach())}

    def selection(self, parts: dict[str, float]) -> float:
        return parts["loss"]
