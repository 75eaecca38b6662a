"""Factories for test data: demand windows, series and request payloads."""

from __future__ import annotations

import numpy as np

from ddnn.data import synthetic_demand
from ddnn.windows import Dataset, prepare_dataset


def random_windows(
    n: int, n_steps: int, n_vnfs: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled windows (n, N, K) in [0, 1] with smooth daily-like shapes, and next-slot targets."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps + 1)[None, :, None] + rng.integers(0, 24, size=(n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 1, n_vnfs))
    series = (
        0.5
        + 0.35 * np.sin(2 * np.pi * t / 24 + phase)
        + 0.05 * rng.standard_normal((n, n_steps + 1, n_vnfs))
    )
    series = np.clip(series, 0.0, 1.0).astype(np.float32)
    return series[:, :n_steps], series[:, n_steps]


def tiny_dataset(n_steps: int = 12, n_vnfs: int = 4, n_days: int = 20, seed: int = 0) -> Dataset:
    """Synthetic hourly demand cut into windows: a real Dataset in well under a second."""
    series = synthetic_demand(n_cells=n_vnfs, n_days=n_days, interval_minutes=60, seed=seed)
    return prepare_dataset(series, n_steps=n_steps, n_vnfs=n_vnfs)


def demand_payload(
    n_steps: int, n_vnfs: int, seed: int = 0, scale: float = 100.0
) -> list[list[float]]:
    """A request body's `demand`: K lists of N non-negative numbers in data units, oldest first."""
    inputs, _ = random_windows(1, n_steps, n_vnfs, seed)
    return (inputs[0].T * scale).astype(float).tolist()
