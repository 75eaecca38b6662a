"""Evaluation maths of Sec. V: Eq. 9, trade-off curves, their comparison, and Table II's latency.

A trade-off curve is an (P, 2) array of (share resolved locally, mean cost per sample), sorted by
share. Every curve includes the two ends, (0, mean C_R) and (1, mean C_L), which any policy
reaches at the extremes of its knob.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddnn.config import PAPER_RTT_MS
from ddnn.cost import ExitCosts
from ddnn.policies import CONFIDENCE, COST_AWARE, DEFAULT_ML_THRESHOLD, ML, ORACLE, RANDOM, Policy

GRID = np.linspace(0.0, 1.0, 101)


def total_cost(local: np.ndarray, cost_local: np.ndarray, cost_remote: np.ndarray) -> float:
    """Eq. 9: sum over samples of C_L where the sample exited locally, else C_R."""
    return float(np.where(local, cost_local, cost_remote).sum())


def mean_cost(local: np.ndarray, cost_local: np.ndarray, cost_remote: np.ndarray) -> float:
    """Eq. 9 divided by the number of samples (the unit of summary.json)."""
    return total_cost(local, cost_local, cost_remote) / max(len(cost_local), 1)


def _with_ends(points: np.ndarray, cost_local: np.ndarray, cost_remote: np.ndarray) -> np.ndarray:
    ends = np.array([[0.0, cost_remote.mean()], [1.0, cost_local.mean()]])
    merged = np.vstack([points.reshape(-1, 2), ends])
    order = np.lexsort((merged[:, 1], merged[:, 0]))
    return merged[order]


def curve_from_masks(
    masks: Iterable[np.ndarray], cost_local: np.ndarray, cost_remote: np.ndarray
) -> np.ndarray:
    """A policy's curve from its local masks over a sweep of its knob."""
    points = np.array([[m.mean(), mean_cost(m, cost_local, cost_remote)] for m in masks])
    return _with_ends(points, cost_local, cost_remote)


def oracle_curve(
    cost_local: np.ndarray, cost_remote: np.ndarray, grid: np.ndarray = GRID
) -> np.ndarray:
    """The lower bound: at share s, keep local the s*M samples the cloud would help least.

    Sweeping C_T over all values makes the oracle keep local exactly the samples with the smallest
    benefit C_L - C_R, so the exact curve is a cumulative sum over sorted benefits.
    """
    benefit = np.sort(cost_local - cost_remote)
    cum = np.concatenate([[0.0], np.cumsum(benefit)])  # extra cost of m local samples
    m = np.round(grid * len(benefit)).astype(int)
    return np.column_stack([m / len(benefit), (cost_remote.sum() + cum[m]) / len(benefit)])


def random_curve(
    cost_local: np.ndarray, cost_remote: np.ndarray, grid: np.ndarray = GRID
) -> np.ndarray:
    """The expected cost of the random policy: a straight line between the two ends."""
    return np.column_stack([grid, grid * cost_local.mean() + (1 - grid) * cost_remote.mean()])


def interpolate(curve: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """Cost on a common share grid (piecewise linear; duplicate shares keep their lowest cost)."""
    ordered = curve[np.argsort(curve[:, 0], kind="stable")]
    shares, first = np.unique(ordered[:, 0], return_index=True)
    lowest = np.minimum.reduceat(ordered[:, 1], first)
    return np.asarray(np.interp(grid, shares, lowest), dtype=np.float64)


def share_local_at(curve: np.ndarray, reference: float) -> float:
    """Largest share resolved locally whose cost is still <= reference (0.0 if none is)."""
    grid = np.linspace(0.0, 1.0, 1001)
    ok = interpolate(curve, grid) <= reference + 1e-12
    return float(grid[ok].max()) if ok.any() else 0.0


def gap_closed(curve: np.ndarray, oracle: np.ndarray, random: np.ndarray) -> float:
    """Share of the area between the random and oracle curves that a policy closes.

    1 = as good as the oracle, 0 = no better than random, negative = worse than random.
    """
    room = _area(random) - _area(oracle)
    return (_area(random) - _area(curve)) / room if room > 1e-12 else 0.0


def _area(curve: np.ndarray) -> float:
    return float(np.trapezoid(interpolate(curve), GRID))


def sweep_curve(
    policy: Policy, scores: np.ndarray, thresholds: Iterable[float], costs: ExitCosts
) -> np.ndarray:
    """A policy's curve: its rule on one set of scores at each threshold of the sweep."""
    masks = (policy.local(scores, threshold) for threshold in thresholds)
    return curve_from_masks(masks, costs.local, costs.remote)


@dataclass(frozen=True)
class PolicyScores:
    """Each curve policy's scores on one set of windows, and the knob values to sweep."""

    costs: ExitCosts
    confidence: np.ndarray  # (M,) U
    ml: Sequence[np.ndarray]  # (M,) P(local) of the classifier at each C_T of the grid
    cost_aware: np.ndarray  # (M,) predicted C_L - C_R
    ct_grid: np.ndarray  # the C_T values of the cost-aware sweep (and of the classifiers)
    eta_points: int | None  # confidence: quantile levels of U swept (None: every distinct U)
    ml_threshold: float = DEFAULT_ML_THRESHOLD


def policy_curves(scores: PolicyScores) -> dict[str, np.ndarray]:
    """(share local, mean cost) curves of the five curve policies."""
    costs = scores.costs
    u = scores.confidence
    return {
        ORACLE.name: oracle_curve(costs.local, costs.remote),
        RANDOM.name: random_curve(costs.local, costs.remote),
        CONFIDENCE.name: sweep_curve(
            CONFIDENCE, u, CONFIDENCE.thresholds(u, scores.eta_points), costs
        ),
        ML.name: curve_from_masks(
            (ML.local(p_local, scores.ml_threshold) for p_local in scores.ml),
            costs.local,
            costs.remote,
        ),
        COST_AWARE.name: sweep_curve(COST_AWARE, scores.cost_aware, scores.ct_grid, costs),
    }


def policy_metrics(curves: Mapping[str, np.ndarray], reference: float) -> dict[str, Any]:
    """summary.json's "policies": each curve, its share at the reference cost, its gap closed."""
    return {
        name: {
            "curve": [[float(s), float(c)] for s, c in curve],
            "share_local_at_reference": share_local_at(curve, reference),
            "gap_closed": gap_closed(curve, curves[ORACLE.name], curves[RANDOM.name]),
        }
        for name, curve in curves.items()
    }


# ---------------------------------------------------------------------------------------------
# Measured operating points on a common share axis, for pooling runs (issue 9's protocol)
#
# A score policy's operating points are its thresholds. Ranking one run's windows in the order
# its rule sends them local (lowest U first, highest P(local) first, ...), the threshold that
# keeps exactly the first round(s M) windows local is a real threshold of that run: the cost at
# share s is measured, not interpolated. Runs are pooled at equal shares.

SHARE_LEVELS = np.linspace(0.0, 1.0, 101)


def local_first_ranks(policy: Policy, scores: np.ndarray) -> np.ndarray:
    """(M,) each window's place in the order the policy's rule sends windows local (0 first);
    ties keep their window order."""
    scores = np.asarray(scores, dtype=np.float64)
    key = -scores if policy.local_if == ">=" else scores
    order = np.argsort(key, kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(order.size)
    return ranks


def share_sweep(
    ranks: np.ndarray, costs: ExitCosts, shares: np.ndarray = SHARE_LEVELS
) -> np.ndarray:
    """(S, M) each window's cost when the round(s M) first-ranked windows are resolved locally."""
    n_local = np.round(shares * ranks.size).astype(np.int64)
    local = ranks[None, :] < n_local[:, None]
    return np.where(local, costs.local[None, :], costs.remote[None, :])


def random_sweep(costs: ExitCosts, shares: np.ndarray = SHARE_LEVELS) -> np.ndarray:
    """(S, M) each window's expected cost under the random policy at each share."""
    expected = (
        shares[:, None] * costs.local[None, :] + (1 - shares[:, None]) * costs.remote[None, :]
    )
    return np.asarray(expected, dtype=np.float64)


def mask_sweep(masks: np.ndarray, costs: ExitCosts) -> np.ndarray:
    """(P, M) each window's cost under each of P local masks (P, M)."""
    return np.where(masks, costs.local[None, :], costs.remote[None, :])


def share_under(
    curve: np.ndarray, reference: np.ndarray, shares: np.ndarray = SHARE_LEVELS
) -> np.ndarray:
    """The largest measured share whose cost is at most the reference (0 if none is).

    curve (..., S) and reference (...) broadcast over leading axes (bootstrap replicates).
    """
    ok = curve <= np.asarray(reference)[..., None] + 1e-12
    best = np.where(ok, shares, -np.inf).max(axis=-1)
    return np.asarray(np.where(np.isfinite(best), best, 0.0))


def gap_closed_on_grid(
    curve: np.ndarray, oracle: np.ndarray, random: np.ndarray, shares: np.ndarray = SHARE_LEVELS
) -> np.ndarray:
    """Share of the area between the random and oracle curves that a curve closes (..., S)."""

    def area(values: np.ndarray) -> np.ndarray:
        return np.asarray(np.trapezoid(values, shares, axis=-1))

    room = area(random) - area(oracle)
    closed = (area(random) - area(curve)) / np.where(np.abs(room) > 1e-12, room, np.nan)
    return np.asarray(np.nan_to_num(closed, nan=0.0))


def best_operating_cost(curve: np.ndarray) -> float:
    """The lowest mean cost along a curve (the ends, all local and all remote, included)."""
    return float(curve[:, 1].min())


@dataclass(frozen=True)
class LatencyModel:
    """Table II: mean time per sample (ms) as a function of the share resolved locally.

    T(s) = t_decision + s * t_local + (1 - s) * (rtt + t_remote), as in the paper, where t_local
    is the edge forward pass (edge LSTM + local exit) and t_remote the forward pass that produces
    the remote exit (edge LSTM + cloud half).
    """

    t_decision_ms: float
    t_local_ms: float
    t_remote_ms: float
    rtt_ms: float = PAPER_RTT_MS

    def per_sample(self, share_local: float) -> float:
        s = share_local
        return self.t_decision_ms + s * self.t_local_ms + (1 - s) * (self.rtt_ms + self.t_remote_ms)

    def centralized(self, t_model_ms: float) -> float:
        return self.rtt_ms + t_model_ms


def median_ms(fn: Callable[[], object], repeats: int = 50, warmup: int = 5) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))
