"""The asymmetric SLA cost of Eq. 3 and the per-sample exit costs C_L, C_R (Eq. 8).

f(y, d) = c1 * (y - d)^2  if y <= d   (under-provisioning: SLA violation, quadratic)
        = c2 * (y - d)    if y >  d   (over-provisioning: wasted resource, linear)

The same maths exists twice on purpose: in torch (differentiable, for training) and in numpy (for
evaluation and the naive baselines, which never touch torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ddnn.config import CostConfig

DEFAULT_COST = CostConfig()


def slot_cost(y: torch.Tensor, d: torch.Tensor, cost: CostConfig = DEFAULT_COST) -> torch.Tensor:
    """Element-wise Eq. 3 in torch; same shape as the (broadcast) inputs."""
    gap = y - d
    return torch.where(gap <= 0, cost.c1 * gap.square(), cost.c2 * gap)


def sample_cost(y: torch.Tensor, d: torch.Tensor, cost: CostConfig = DEFAULT_COST) -> torch.Tensor:
    """Cost of one decision for all K VNFs: (B, K), (B, K) -> (B,)."""
    return slot_cost(y, d, cost).sum(dim=-1)


def slot_cost_np(y: np.ndarray, d: np.ndarray, cost: CostConfig = DEFAULT_COST) -> np.ndarray:
    """Element-wise Eq. 3 in numpy."""
    gap = np.asarray(y, dtype=np.float64) - np.asarray(d, dtype=np.float64)
    return np.asarray(np.where(gap <= 0, cost.c1 * gap**2, cost.c2 * gap))


def sample_cost_np(y: np.ndarray, d: np.ndarray, cost: CostConfig = DEFAULT_COST) -> np.ndarray:
    """(M, K), (M, K) -> (M,): the per-sample cost summed over the K VNFs."""
    return np.asarray(slot_cost_np(y, d, cost).sum(axis=-1))


@dataclass(frozen=True)
class ExitCosts:
    """Per-sample cost of each exit on a set of windows (Eq. 8): C_L and C_R, shape (M,)."""

    local: np.ndarray
    remote: np.ndarray

    @classmethod
    def of(
        cls, y_local: np.ndarray, y_remote: np.ndarray, targets: np.ndarray, cost: CostConfig
    ) -> ExitCosts:
        """C_L and C_R from both exits' allocations (M, K) and the demand (M, K)."""
        return cls(sample_cost_np(y_local, targets, cost), sample_cost_np(y_remote, targets, cost))

    @property
    def benefit(self) -> np.ndarray:
        """C_L - C_R: what the cloud saves on each sample (negative: the edge was better)."""
        return np.asarray(self.local - self.remote, dtype=np.float64)

    def mean(self) -> dict[str, float]:
        return {"local": float(self.local.mean()), "remote": float(self.remote.mean())}

    def subset(self, index: np.ndarray) -> ExitCosts:
        return ExitCosts(self.local[index], self.remote[index])


def best_offset(
    prediction: np.ndarray, target: np.ndarray, cost: CostConfig = DEFAULT_COST
) -> float:
    """The constant m minimising sum f(prediction + m, target) over all elements given.

    The summed cost is convex in m and its derivative, sum 2*c1*(y-d) over under-provisioned
    slots + c2 * (number of over-provisioned slots), is non-decreasing, so bisection on the sign
    of the derivative finds the exact minimiser (to 1e-12 relative).
    """
    residual = (
        np.asarray(target, dtype=np.float64) - np.asarray(prediction, dtype=np.float64)
    ).ravel()
    residual = residual[np.isfinite(residual)]
    if residual.size == 0:
        raise ValueError("best_offset: no finite (prediction, target) pairs")

    def slope(m: float) -> float:
        gap = m - residual  # y - d with y = prediction + m
        return float(np.sum(np.where(gap <= 0, 2.0 * cost.c1 * gap, cost.c2)))

    lo, hi = float(residual.min()), float(residual.max())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if slope(mid) > 0:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            break
    return 0.5 * (lo + hi)
