"""Tests of ddnn.data.synthetic: seeded, Milano-like demand with daily and weekly cycles."""

from __future__ import annotations

import numpy as np
import pytest

from ddnn.data import synthetic_demand

pytestmark = pytest.mark.unit


def lag_autocorrelation(values: np.ndarray, lag: int) -> float:
    centred = values - values.mean()
    return float(np.sum(centred[lag:] * centred[:-lag]) / np.sum(centred * centred))


def test_synthetic_demand_is_deterministic_for_a_seed() -> None:
    assert synthetic_demand(seed=3).fingerprint() == synthetic_demand(seed=3).fingerprint()
    assert synthetic_demand(seed=3).fingerprint() != synthetic_demand(seed=4).fingerprint()


def test_synthetic_demand_has_shape_ids_and_positive_values() -> None:
    series = synthetic_demand(n_cells=4, n_days=3, interval_minutes=30)
    assert series.values.shape == (3 * 48, 4)
    assert series.cell_ids == (1, 2, 3, 4)
    assert series.interval_minutes == 30
    assert np.isfinite(series.values).all()
    assert (series.values > 0).all()


def test_synthetic_demand_repeats_daily() -> None:
    series = synthetic_demand(n_cells=4, n_days=14)
    for column in series.values.T:
        assert lag_autocorrelation(column, 144) > lag_autocorrelation(column, 72) + 0.5


def test_synthetic_demand_weekends_are_lower() -> None:
    series = synthetic_demand(n_cells=8, n_days=14)  # starts on Monday 2013-11-04
    days = series.values.reshape(14, 144, 8).sum(axis=1)
    weekday_mean = days[[0, 1, 2, 3, 4, 7, 8, 9, 10, 11]].mean()
    weekend_mean = days[[5, 6, 12, 13]].mean()
    assert 0.6 < weekend_mean / weekday_mean < 0.9
