"""The joint loss of Eq. 7: w_L * f(y_L, d) + w_R * f(y_R, d), summed over K, averaged over B."""

from __future__ import annotations

import torch

from ddnn.config import CostConfig
from ddnn.cost import sample_cost
from ddnn.model import ExitOutputs


def joint_loss(
    out: ExitOutputs, target: torch.Tensor, w_local: float, cost: CostConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Return the loss to back-propagate and the per-exit mean costs (for logging).

    Models without a local exit (the centralized baselines) are trained on the remote cost only.
    """
    if not 0.0 <= w_local <= 1.0:
        raise ValueError(f"w_local must be in [0, 1], got {w_local}")
    remote = sample_cost(out.y_remote, target, cost).mean()
    parts = {"remote": float(remote.detach())}
    if out.y_local is None:
        return remote, parts
    local = sample_cost(out.y_local, target, cost).mean()
    parts["local"] = float(local.detach())
    loss = w_local * local + (1.0 - w_local) * remote
    parts["joint"] = float(loss.detach())
    return loss, parts
