"""Tiny settings for the CLI and run-all tests: N=24 hourly, K=4, 2 steps per epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TINY_RUN: dict[str, Any] = {
    "model": {
        "n_steps": 24,  # one day of hourly samples: every naive baseline fits
        "n_vnfs": 4,
        "cloud_hidden": [8, 4],
        "head_hidden": [8, 4],
        "output_mode": "residual",
    },
    "train": {"epochs": 2, "batch_size": 32, "max_steps_per_epoch": 2, "patience": 2},
    "offloader": {"epochs": 2, "hidden": [8], "ct_quantiles": [0.25, 0.5, 0.75], "eta_points": 5},
    "data": {"synthetic_interval": 60, "synthetic_days": 20},
    "weight_pairs": [0.9, 0.1],
}


def write_config(folder: Path, **overrides: Any) -> Path:
    path = folder / "tiny.json"
    path.write_text(json.dumps(TINY_RUN | overrides))
    return path


@pytest.fixture
def tiny_run_config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test gets its own SQLite store and working folder (./mlruns lands there)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return uri
