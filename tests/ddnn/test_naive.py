"""Naive baselines: fitted on train with the same cost, and exact on the data they describe."""

from __future__ import annotations

import numpy as np
import pytest

from ddnn.config import CostConfig
from ddnn.cost import sample_cost_np
from ddnn.naive import fit_naive, fit_naive_baselines

pytestmark = pytest.mark.unit


def periodic_windows(period: int, n_steps: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n + n_steps + 1)
    series = (0.5 + 0.4 * np.sin(2 * np.pi * t / period))[:, None]
    views = np.lib.stride_tricks.sliding_window_view(series, n_steps + 1, axis=0).transpose(0, 2, 1)
    return views[:n, :n_steps], views[:n, n_steps]


def test_seasonal_naive_is_exact_on_a_daily_cycle() -> None:
    inputs, targets = periodic_windows(period=24, n_steps=48)
    model = fit_naive("seasonal_naive", inputs, targets, steps_per_day=24, cost=CostConfig())
    assert sample_cost_np(model.predict(inputs), targets).max() < 1e-9


def test_last_value_margin_is_non_negative_on_a_rising_series() -> None:
    inputs = np.arange(30, dtype=np.float64).reshape(10, 3, 1) / 30
    targets = inputs[:, -1, :] + 0.05
    model = fit_naive("last_value", inputs, targets, steps_per_day=24, cost=CostConfig())
    assert model.offsets[0] == pytest.approx(0.05, abs=1e-6)


def test_best_constant_beats_other_constants(rng: np.random.Generator) -> None:
    inputs, targets = rng.random((100, 5, 2)), rng.random((100, 2))
    model = fit_naive("best_constant", inputs, targets, steps_per_day=24, cost=CostConfig())
    best = sample_cost_np(model.predict(inputs), targets).sum()
    for delta in (-0.05, 0.05):
        assert best <= sample_cost_np(model.predict(inputs) + delta, targets).sum()


def test_seasonal_naive_skipped_when_window_shorter_than_a_day(rng: np.random.Generator) -> None:
    inputs, targets = rng.random((20, 12, 2)), rng.random((20, 2))
    assert set(fit_naive_baselines(inputs, targets, steps_per_day=24, cost=CostConfig())) == {
        "best_constant",
        "last_value",
        "last_value_no_margin",
    }


def test_no_margin_baselines_are_the_plain_lagged_value(rng: np.random.Generator) -> None:
    inputs, targets = rng.random((30, 48, 2)), rng.random((30, 2))
    fitted = fit_naive_baselines(inputs, targets, steps_per_day=24, cost=CostConfig())
    np.testing.assert_array_equal(fitted["last_value_no_margin"].predict(inputs), inputs[:, -1])
    np.testing.assert_array_equal(
        fitted["seasonal_naive_no_margin"].predict(inputs), inputs[:, -24]
    )
    assert fitted["last_value"].offsets.any()  # the margin is fitted


def test_unknown_naive_kind_is_refused(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="unknown naive"):
        fit_naive("mean", rng.random((5, 4, 1)), rng.random((5, 1)), 24, CostConfig())
