"""Naive baselines every learned model must beat, fitted on the training split with the same cost.

- best_constant:            y = c_k               (one constant per VNF)
- last_value:               y = d_{t-1} + m_k     (persistence + a per-VNF safety margin)
- last_value_no_margin:     y = d_{t-1}           (plain persistence: fitted on nothing)
- seasonal_naive:           y = d_{t-one day} + m_k   (the same slot yesterday + a margin)
- seasonal_naive_no_margin: y = d_{t-one day}
Each c_k / m_k minimises the summed asymmetric cost on the training windows (cost.best_offset).
The margin protects against the quadratic under-provisioning cost, but it is fitted on training
data: on a calmer test period, plain persistence can be cheaper, so both are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ddnn.config import CostConfig
from ddnn.cost import best_offset

NAIVE_KINDS = (
    "best_constant",
    "last_value",
    "last_value_no_margin",
    "seasonal_naive",
    "seasonal_naive_no_margin",
)
NO_MARGIN_SUFFIX = "_no_margin"


@dataclass(frozen=True)
class NaiveForecaster:
    kind: str
    offsets: np.ndarray  # (K,) the fitted constant or margin per VNF
    lag: int | None  # steps back of the base value; None for the constant

    def base(self, inputs: np.ndarray) -> np.ndarray:
        """(M, N, K) -> (M, K): the value the margin is added to (zeros for the constant)."""
        if self.lag is None:
            return np.zeros((inputs.shape[0], inputs.shape[2]))
        if self.lag > inputs.shape[1]:
            raise ValueError(
                f"{self.kind}: lag {self.lag} exceeds the window length {inputs.shape[1]}"
            )
        return np.asarray(inputs[:, -self.lag, :], dtype=np.float64)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(self.base(inputs) + self.offsets)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "offsets": self.offsets.tolist(), "lag": self.lag}


def naive_lag(kind: str, steps_per_day: int) -> int | None:
    lags: dict[str, int | None] = {
        "best_constant": None,
        "last_value": 1,
        "seasonal_naive": steps_per_day,
    }
    base = kind.removesuffix(NO_MARGIN_SUFFIX)
    if kind not in NAIVE_KINDS or base not in lags:
        raise ValueError(f"unknown naive baseline {kind!r}; known: {NAIVE_KINDS}")
    return lags[base]


def fit_naive(
    kind: str, inputs: np.ndarray, targets: np.ndarray, steps_per_day: int, cost: CostConfig
) -> NaiveForecaster:
    """Fit one naive forecaster on training windows (M, N, K) and targets (M, K)."""
    unfitted = NaiveForecaster(kind, np.zeros(targets.shape[1]), naive_lag(kind, steps_per_day))
    if kind.endswith(NO_MARGIN_SUFFIX):
        return unfitted
    base = unfitted.base(inputs)
    offsets = np.array(
        [best_offset(base[:, k], targets[:, k], cost) for k in range(targets.shape[1])]
    )
    return NaiveForecaster(kind, offsets, unfitted.lag)


def fit_naive_baselines(
    inputs: np.ndarray, targets: np.ndarray, steps_per_day: int, cost: CostConfig
) -> dict[str, NaiveForecaster]:
    """All naive baselines whose lag fits in the window (seasonal needs N >= one day)."""
    kinds = [k for k in NAIVE_KINDS if (naive_lag(k, steps_per_day) or 0) <= inputs.shape[1]]
    return {k: fit_naive(k, inputs, targets, steps_per_day, cost) for k in kinds}
