"""Eq. 9, trade-off curves (oracle below random, shared ends), their comparison, Table II maths."""

from __future__ import annotations

import numpy as np
import pytest

from ddnn.cost import ExitCosts
from ddnn.evaluation import (
    GRID,
    LatencyModel,
    PolicyScores,
    curve_from_masks,
    gap_closed,
    interpolate,
    mean_cost,
    oracle_curve,
    policy_curves,
    policy_metrics,
    random_curve,
    share_local_at,
    total_cost,
)
from ddnn.policies import ORACLE

pytestmark = pytest.mark.unit


@pytest.fixture
def costs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    cost_remote = rng.gamma(2.0, 0.5, size=400)
    cost_local = cost_remote + rng.normal(0.3, 0.5, size=400)  # the cloud helps some samples a lot
    return np.clip(cost_local, 0, None), cost_remote


def test_total_cost_picks_the_exit_per_sample() -> None:
    local = np.array([True, False, True])
    assert total_cost(local, np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == 24.0
    assert mean_cost(local, np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == 8.0


def test_oracle_curve_is_below_random_and_meets_it_at_the_ends(
    costs: tuple[np.ndarray, np.ndarray],
) -> None:
    cost_local, cost_remote = costs
    oracle, random = oracle_curve(cost_local, cost_remote), random_curve(cost_local, cost_remote)
    assert np.all(oracle[:, 1] <= random[:, 1] + 1e-12)
    assert oracle[0, 1] == pytest.approx(random[0, 1]) == pytest.approx(cost_remote.mean())
    assert oracle[-1, 1] == pytest.approx(random[-1, 1]) == pytest.approx(cost_local.mean())
    assert (oracle[1:-1, 1] < random[1:-1, 1]).any()


def test_oracle_curve_matches_oracle_decisions(costs: tuple[np.ndarray, np.ndarray]) -> None:
    cost_local, cost_remote = costs
    benefit = np.sort(cost_local - cost_remote)
    c_t = float(benefit[99])  # exactly 100 samples have benefit <= C_T
    decision = ORACLE.decide_on(cost_local - cost_remote, c_t)
    assert decision.local.sum() == 100
    curve = oracle_curve(cost_local, cost_remote, grid=np.array([0.25]))
    assert curve[0, 1] == pytest.approx(mean_cost(decision.local, cost_local, cost_remote))


def test_oracle_is_the_best_any_mask_can_do(
    costs: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> None:
    cost_local, cost_remote = costs
    oracle = oracle_curve(cost_local, cost_remote, grid=np.array([0.5]))
    for _ in range(20):
        mask = np.zeros(400, dtype=bool)
        mask[rng.choice(400, 200, replace=False)] = True
        assert mean_cost(mask, cost_local, cost_remote) >= oracle[0, 1] - 1e-12


def test_gap_closed_is_one_for_oracle_and_zero_for_random(
    costs: tuple[np.ndarray, np.ndarray],
) -> None:
    cost_local, cost_remote = costs
    oracle, random = oracle_curve(cost_local, cost_remote), random_curve(cost_local, cost_remote)
    assert gap_closed(oracle, oracle, random) == pytest.approx(1.0)
    assert gap_closed(random, oracle, random) == pytest.approx(0.0, abs=1e-12)
    worse = random.copy()
    worse[1:-1, 1] += 0.5
    assert gap_closed(worse, oracle, random) < 0


def test_curve_from_masks_adds_both_ends_and_sorts(costs: tuple[np.ndarray, np.ndarray]) -> None:
    cost_local, cost_remote = costs
    masks = [np.arange(400) < 300, np.arange(400) < 100]
    curve = curve_from_masks(masks, cost_local, cost_remote)
    assert curve[0].tolist() == [0.0, pytest.approx(cost_remote.mean())]
    assert curve[-1].tolist() == [1.0, pytest.approx(cost_local.mean())]
    assert np.all(np.diff(curve[:, 0]) >= 0)
    assert curve[1, 0] == 0.25


def test_share_local_at_reference_reads_the_curve() -> None:
    curve = np.array([[0.0, 1.0], [0.5, 1.0], [1.0, 2.0]])
    assert share_local_at(curve, 1.0) == pytest.approx(0.5)
    assert share_local_at(curve, 1.5) == pytest.approx(0.75)
    assert share_local_at(curve, 0.5) == 0.0
    assert share_local_at(curve, 5.0) == 1.0


def test_interpolate_keeps_the_lowest_cost_of_duplicate_shares() -> None:
    curve = np.array([[0.0, 2.0], [0.5, 3.0], [0.5, 1.0], [1.0, 2.0]])
    assert interpolate(curve, np.array([0.5]))[0] == 1.0
    assert len(interpolate(curve)) == len(GRID)


def test_latency_model_matches_the_papers_formula() -> None:
    model = LatencyModel(t_decision_ms=0.05, t_local_ms=0.1, t_remote_ms=2.0, rtt_ms=42.46)
    assert model.per_sample(0.4) == pytest.approx(0.05 + 0.4 * 0.1 + 0.6 * (42.46 + 2.0))
    assert model.per_sample(0.95) < model.per_sample(0.05)
    assert model.centralized(2.2) == pytest.approx(44.66)


def test_curves_span_both_ends_and_the_oracle_closes_the_whole_gap() -> None:
    rng = np.random.default_rng(0)
    test = ExitCosts(local=rng.uniform(0, 2, 50), remote=rng.uniform(0, 1, 50))
    scores = PolicyScores(
        costs=test,
        confidence=rng.uniform(size=50),
        ml=[rng.uniform(size=50) for _ in range(2)],
        cost_aware=test.benefit,  # a perfect regressor
        ct_grid=np.array([0.0, 0.5, 1.0]),
        eta_points=5,
    )
    curves = policy_curves(scores)
    metrics = policy_metrics(curves, reference=float(test.remote.mean()))
    for curve in curves.values():
        assert curve[0, 0] == 0.0 and curve[-1, 0] == 1.0
    assert metrics["oracle"]["gap_closed"] == pytest.approx(1.0)
    assert metrics["random"]["gap_closed"] == pytest.approx(0.0)
    assert metrics["cost_aware"]["gap_closed"] > 0.5
