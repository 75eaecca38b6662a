"""summary.json's numbers, pooled over runs (folds, groups of cells, seeds) with 95 % intervals.

Every number is computed on the test windows of the records given (training.records) and comes
with a paired block-bootstrap interval (ddnn.bootstrap: blocks are days of a fold). Nothing here
chooses anything on the test windows: the strict reference (the best model that never offloads)
is the one with the lowest validation cost, and each policy's "chosen" operating point uses the
knobs chosen on validation windows.

- ``costs`` / ``costs_ci``: the mean cost per window of every model that never offloads (the
  DDNN's two exits as ``all_local`` / ``all_remote``, the centralized models, LightGBM, the naive
  baselines).
- ``comparisons``: ``1 - remote / other`` (positive: the remote exit is cheaper) for the
  centralized LSTM, the local exit and the best baseline (chosen on validation).
- ``policies``: each policy's measured operating points on a common share axis (``points``:
  the cost when each run keeps exactly that share of its windows local, by its own scores),
  the largest measured share at no more than the centralized LSTM's cost (the paper's reference)
  and at no more than the strict reference's, the share of the random-to-oracle gap it closes,
  and its cost at the knobs chosen on validation.
- ``ml_minus_confidence``: the ML policy's cost minus the confidence policy's, at equal shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ddnn.bootstrap import BlockBootstrap, Interval
from ddnn.cost import ExitCosts
from ddnn.evaluation import (
    SHARE_LEVELS,
    gap_closed_on_grid,
    local_first_ranks,
    mask_sweep,
    random_sweep,
    share_sweep,
    share_under,
)
from ddnn.policies import CONFIDENCE, CURVE_POLICIES, ML, ORACLE, RANDOM, Policy
from training.records import ALL_LOCAL, ALL_REMOTE, WindowRecord

REFERENCE = "centralized_lstm"  # the paper's reference cost for "share resolved locally"
DIFFERENCE_SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class Pool:
    """The test windows of several records, side by side, with one bootstrap over their days."""

    def __init__(self, records: Sequence[WindowRecord], n_boot: int, seed: int) -> None:
        if not records:
            raise ValueError("no records to pool")
        self.records = list(records)
        self.boot = BlockBootstrap(np.concatenate([r.blocks for r in records]), n_boot, seed)
        self.exits = ExitCosts(
            np.concatenate([r.exits.local for r in records]),
            np.concatenate([r.exits.remote for r in records]),
        )
        names = set.intersection(*(set(r.references) for r in records))
        self.references = {
            name: np.concatenate([r.references[name] for r in records]) for name in sorted(names)
        }

    def per_record(self, fn: Callable[[WindowRecord], np.ndarray]) -> np.ndarray:
        """fn's (..., M_r) arrays of every record, joined on the window axis."""
        return np.concatenate([fn(r) for r in self.records], axis=-1)

    def validation_cost(self, name: str) -> float:
        """A model's validation cost, averaged over the records (each record weighs the same)."""
        return float(np.mean([r.reference_val[name] for r in self.records]))


def pooled_summary(
    records: Sequence[WindowRecord], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """The pooled numbers of summary.json, and per fold under "by_fold" (when there are two+)."""
    summary = pooled_numbers(Pool(records, n_boot, seed))
    folds = sorted({r.fold for r in records})
    if len(folds) > 1:
        summary["by_fold"] = {
            fold: pooled_numbers(Pool([r for r in records if r.fold == fold], n_boot, seed))
            for fold in folds
        }
    return summary


def pooled_numbers(pool: Pool) -> dict[str, Any]:
    costs = {name: pool.boot.mean(values) for name, values in pool.references.items()}
    never_offload = sorted(pool.references)
    strict = min(never_offload, key=pool.validation_cost)
    baselines = [n for n in never_offload if n not in (ALL_LOCAL, ALL_REMOTE)]
    best_baseline = min(baselines, key=pool.validation_cost)
    remote = pool.references[ALL_REMOTE]
    comparisons = {
        "remote_vs_centralized": _relative(pool, remote, pool.references[REFERENCE]),
        "remote_vs_local": _relative(pool, remote, pool.references[ALL_LOCAL]),
        "remote_vs_best_baseline": _relative(pool, remote, pool.references[best_baseline])
        | {"baseline": best_baseline},
    }
    sweeps = {policy.name: policy_sweep(pool, policy) for policy in CURVE_POLICIES}
    references = {"paper": REFERENCE, "strict": strict}
    policies = {name: policy_numbers(pool, sweeps, name, references) for name in sweeps}
    return {
        "costs": {name: c.value for name, c in costs.items()},
        "costs_ci": {name: c.as_list() for name, c in costs.items()},
        "comparisons": comparisons,
        "references": references | {"strict_validation_cost": pool.validation_cost(strict)},
        "policies": policies,
        "ml_per_transmission_cost": ml_grid_points(pool),
        "ml_minus_confidence": difference_at_shares(pool, sweeps[ML.name], sweeps[CONFIDENCE.name]),
        "test_windows": pool.boot.n_windows,
        "test_days": pool.boot.n_blocks,
    }


def _relative(pool: Pool, remote: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """1 - remote / other, with its interval (positive: the remote exit is cheaper)."""
    found = pool.boot.statistic(lambda r, o: 1.0 - r / o, remote, other)
    return {"relative": found.value, "ci": found.as_list()}


def policy_sweep(pool: Pool, policy: Policy) -> np.ndarray:
    """(S, M) each window's cost at each share of the common axis, for one policy."""
    if policy is RANDOM:
        return random_sweep(pool.exits)

    def one(record: WindowRecord) -> np.ndarray:
        scores = record.exits.benefit if policy is ORACLE else record.scores[policy.name]
        return share_sweep(local_first_ranks(policy, scores), record.exits)

    return pool.per_record(one)


def policy_numbers(
    pool: Pool, sweeps: dict[str, np.ndarray], name: str, references: dict[str, str]
) -> dict[str, Any]:
    curve, _ = pool.boot.means(sweeps[name])
    points = [[float(s), float(c)] for s, c in zip(SHARE_LEVELS, curve, strict=True)]
    numbers: dict[str, Any] = {"curve": points, "points": points}
    for key, reference in (("reference", references["paper"]), ("best", references["strict"])):
        found = pool.boot.statistic(share_under, sweeps[name], pool.references[reference])
        numbers[f"share_local_at_{key}"] = found.value
        numbers[f"share_local_at_{key}_ci"] = found.as_list()
    gap = pool.boot.statistic(
        gap_closed_on_grid, sweeps[name], sweeps[ORACLE.name], sweeps[RANDOM.name]
    )
    numbers["gap_closed"], numbers["gap_closed_ci"] = gap.value, gap.as_list()
    chosen = [r.chosen.get(name) for r in pool.records]
    if all(mask is not None for mask in chosen):
        numbers["chosen"] = chosen_point(pool, name)
    return numbers


def chosen_point(pool: Pool, name: str) -> dict[str, Any]:
    """The policy at the knobs chosen on validation: its share and cost on the test windows."""
    masks = pool.per_record(lambda r: r.chosen[name].astype(np.float64))
    costs = pool.per_record(lambda r: mask_sweep(r.chosen[name][None, :], r.exits)[0])
    share, cost = pool.boot.mean(masks), pool.boot.mean(costs)
    return {
        "share": share.value,
        "share_ci": share.as_list(),
        "cost": cost.value,
        "cost_ci": cost.as_list(),
    }


def ml_grid_points(pool: Pool) -> list[list[float]]:
    """The paper's ML curve: one classifier per C_T level, pooled by level (when every record
    has the same number of levels)."""
    sizes = {r.ml_grid.shape[0] for r in pool.records}
    if len(sizes) != 1:
        return []
    shares = pool.per_record(lambda r: r.ml_grid.astype(np.float64))
    costs = pool.per_record(lambda r: mask_sweep(r.ml_grid, r.exits))
    share_means, _ = pool.boot.means(shares)
    cost_means, _ = pool.boot.means(costs)
    return [[float(s), float(c)] for s, c in zip(share_means, cost_means, strict=True)]


def difference_at_shares(pool: Pool, first: np.ndarray, second: np.ndarray) -> list[list[float]]:
    """[share, first - second, lo, hi] at each of DIFFERENCE_SHARES (paired)."""
    rows = []
    for share in DIFFERENCE_SHARES:
        level = int(np.argmin(np.abs(SHARE_LEVELS - share)))
        found: Interval = pool.boot.statistic(lambda a, b: a - b, first[level], second[level])
        rows.append([share, found.value, found.lo, found.hi])
    return rows
