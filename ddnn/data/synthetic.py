"""Seeded, Milano-like internet demand, generated in memory (``load_demand("synthetic")``).

It lets every command and test run without the real data: the same seed gives the same series
(and fingerprint), and the series has the structure the models must learn (a daily cycle, lower
weekends, a slow drift, noise and bursts) with no missing samples.
"""

from __future__ import annotations

import math

import numpy as np

from ddnn.data.series import (
    DataError,
    DemandSeries,
    FloatArray,
    IntArray,
    _epoch_minutes,
    _to_minute,
)

SYNTHETIC = "synthetic"

_MINUTES_PER_DAY = 24 * 60


def synthetic_demand(
    n_cells: int = 16,
    n_days: int = 28,
    interval_minutes: int = 10,
    seed: int = 0,
    start: str = "2013-11-04T00:00",
) -> DemandSeries:
    """Seeded, Milano-like internet demand: positive, no NaN, cell ids 1..n_cells.

    Per cell: a lognormal scale, a daily cycle (low at night, peaks late morning and evening,
    phase shifted by up to an hour), weekends 20-30 % lower, a slow AR(1) drift, multiplicative
    noise and a few bursts of 30 min to 3 h.
    """
    source = (
        f"synthetic(seed={seed}, n_cells={n_cells}, n_days={n_days}, "
        f"interval_minutes={interval_minutes}, start={start})"
    )
    _check_synthetic_arguments(n_cells, n_days, interval_minutes, source)
    origin = _to_minute(start.removesuffix("Z"), source)
    n_steps = n_days * (_MINUTES_PER_DAY // interval_minutes)
    minutes = _epoch_minutes(origin) + np.arange(n_steps, dtype=np.int64) * interval_minutes
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(mean=math.log(100.0), sigma=0.8, size=n_cells)
    daily = _daily_cycle(minutes, phase_hours=rng.uniform(-1.0, 1.0, size=n_cells))
    weekly = _weekly_cycle(minutes, weekend_factor=rng.uniform(0.70, 0.80, size=n_cells))
    drift = np.exp(_slow_drift(rng, n_steps, n_cells, interval_minutes))
    noise = np.exp(rng.normal(0.0, 0.08, size=(n_steps, n_cells)))
    bursts = _bursts(rng, n_steps, n_cells, interval_minutes, n_days)
    values = scale * daily * weekly * drift * noise * bursts
    return DemandSeries(values, tuple(range(1, n_cells + 1)), origin, interval_minutes, source)


def _check_synthetic_arguments(n_cells: int, n_days: int, interval: int, source: str) -> None:
    if n_cells < 1 or n_days < 1:
        raise DataError(f"{source}: n_cells and n_days must be at least 1")
    if interval <= 0 or _MINUTES_PER_DAY % interval:
        raise DataError(f"{source}: interval_minutes must divide a day ({_MINUTES_PER_DAY} min)")


def _bump(hours: FloatArray, centre: float, width: float) -> FloatArray:
    """A Gaussian bump on the 24-hour circle."""
    distance = (hours - centre + 12.0) % 24.0 - 12.0
    result: FloatArray = np.exp(-0.5 * (distance / width) ** 2)
    return result


def _daily_cycle(minutes: IntArray, phase_hours: FloatArray) -> FloatArray:
    """(T, C) daily profile in (0.2, 1]: night trough, late-morning and evening peaks."""
    hours = (minutes % _MINUTES_PER_DAY) / 60.0
    shifted = hours[:, None] - phase_hours[None, :]
    return (
        0.22
        + 0.55 * _bump(shifted, 11.5, 2.5)
        + 0.30 * _bump(shifted, 15.5, 3.0)
        + 0.70 * _bump(shifted, 20.5, 2.0)
    )


def _weekly_cycle(minutes: IntArray, weekend_factor: FloatArray) -> FloatArray:
    """(T, C): 1 on weekdays, the cell's weekend factor on Saturdays and Sundays (UTC)."""
    weekday = (minutes // _MINUTES_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weekend = weekday >= 5
    return np.where(weekend[:, None], weekend_factor[None, :], 1.0)


def _slow_drift(rng: np.random.Generator, n_steps: int, n_cells: int, interval: int) -> FloatArray:
    """(T, C) AR(1) log-level with a 12-hour time constant and a stationary std of 0.15."""
    coefficient = math.exp(-interval / (12 * 60))
    sigma = 0.15
    shocks = rng.normal(0.0, sigma * math.sqrt(1.0 - coefficient**2), size=(n_steps, n_cells))
    drift = np.empty((n_steps, n_cells))
    drift[0] = rng.normal(0.0, sigma, size=n_cells)
    for step in range(1, n_steps):
        drift[step] = coefficient * drift[step - 1] + shocks[step]
    return drift


def _bursts(
    rng: np.random.Generator, n_steps: int, n_cells: int, interval: int, n_days: int
) -> FloatArray:
    """(T, C) multiplicative bursts: a few per cell, 30 min - 3 h long, 1.5x - 3x demand."""
    factor = np.ones((n_steps, n_cells))
    for cell in range(n_cells):
        for _ in range(2 + int(rng.poisson(1.5 * n_days / 28))):
            length = min(n_steps, max(1, round(rng.uniform(30.0, 180.0) / interval)))
            begin = int(rng.integers(0, n_steps - length + 1))
            factor[begin : begin + length, cell] *= 1.0 + rng.uniform(0.5, 2.0)
    return factor
