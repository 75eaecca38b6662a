"""The data a job trains on: load the demand, select the cells, cut the windows, move them to
the device, and cost the naive baselines, so every job of one run sees exactly the same samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ddnn.config import CostConfig
from ddnn.cost import sample_cost_np
from ddnn.data import (
    SYNTHETIC,
    DataError,
    DemandSeries,
    apply_gap_rule,
    load_demand,
    synthetic_demand,
)
from ddnn.naive import fit_naive_baselines
from ddnn.windows import (
    MINUTES_PER_DAY,
    Dataset,
    WindowSet,
    prepare_dataset,
    training_end,
    with_calendar,
)
from training.config import DataSpec, Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """One split as tensors on the training device, plus the numpy targets for the costs."""

    inputs: torch.Tensor  # (M, N, K)
    targets: torch.Tensor  # (M, K)
    windows: WindowSet


@dataclass(frozen=True)
class Prepared:
    data: Dataset
    train: Split
    val: Split
    test: Split
    naive_val: dict[str, float]
    naive_test: dict[str, float]

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @property
    def best_constant_val(self) -> float:
        return self.naive_val["best_constant"]

    def params(self) -> dict[str, Any]:
        data = self.data
        return {
            "source": data.source,
            "fingerprint": data.fingerprint,
            "interval_minutes": data.interval_minutes,
            "n_cells": len(data.cell_ids) * data.n_groups,
            "cell_ids": list(data.cell_ids),
            "n_groups": data.n_groups,
            "split": data.split,
            "train_samples": len(data.train),
            "val_samples": len(data.val),
            "test_samples": len(data.test),
        }


def load_series(spec: DataSpec, n_vnfs: int) -> DemandSeries:
    """The demand of the spec, on its own (or the requested) interval, gaps left as NaN."""
    if spec.source == SYNTHETIC:
        series = synthetic_demand(
            n_cells=spec.synthetic_cells or n_vnfs,
            n_days=spec.synthetic_days,
            interval_minutes=spec.interval_minutes or spec.synthetic_interval,
            seed=spec.synthetic_seed,
        )
    else:
        series = load_demand(spec.source, spec.activity)
        if spec.interval_minutes and spec.interval_minutes != series.interval_minutes:
            series = series.resample(spec.interval_minutes)
    return apply_gap_rule(series, "drop")


def select_cells(series: DemandSeries, spec: DataSpec, n_vnfs: int) -> tuple[DemandSeries, int]:
    """Apply --cells (in their order: the DeepCog grid's layout) or --top-k (the group-th block
    of K cells ranked by their totals over the training period only, in rank order); without
    them keep all cells as groups of K (weight sharing)."""
    if spec.cells is not None:
        return series.select(cells=spec.cells), len(spec.cells)
    if spec.top_k is not None:
        ranked = series.ranked(until=training_end(series, spec.split()))
        k, n_groups = spec.top_k, len(ranked) // spec.top_k
        if spec.group >= n_groups or spec.shared_groups > n_groups:
            raise DataError(
                f"{series.source}: {len(ranked)} cells hold groups 0..{n_groups - 1} of {k}, "
                f"not group {spec.group} with {spec.shared_groups} shared group(s)"
            )
        served = spec.group
        others = [g for g in range(n_groups) if g != served][: spec.shared_groups - 1]
        chosen = [cell for g in (served, *others) for cell in ranked[g * k : (g + 1) * k]]
        return series.select(cells=chosen), k
    n_cells = len(series.cell_ids)
    if n_cells < n_vnfs:
        logger.warning("%s has %d cells: using K=%d", series.source, n_cells, n_cells)
        return series, n_cells
    if n_cells % n_vnfs:
        raise DataError(
            f"{series.source}: {n_cells} cells do not form groups of K={n_vnfs}; "
            f"pass --top-k K or --cells ID,ID,..."
        )
    if n_cells > n_vnfs:
        logger.info(
            "%d cells form %d groups of K=%d sharing one model", n_cells, n_cells // n_vnfs, n_vnfs
        )
    return series, n_vnfs


def prepare(settings: Settings) -> tuple[Prepared, Settings]:
    """Load, select, window and move to the device; the naive baselines are fitted here too.

    Returns the settings with the model's K and steps per day fixed by the data.
    """
    series = load_series(settings.data, settings.model.n_vnfs)
    series, n_vnfs = select_cells(series, settings.data, settings.model.n_vnfs)
    model = replace(
        settings.model,
        n_vnfs=n_vnfs,
        steps_per_day=MINUTES_PER_DAY // series.interval_minutes,
    )
    data = prepare_dataset(series, model.window_length, model.demand_width, settings.data.split())
    if model.sites > 1:  # the hierarchical DDNN: every site's columns in, the served site's out
        data = served_site(data, n_vnfs)
    elif settings.data.shared_groups > 1:  # trained on every group, judged on the served one
        data = replace(data, val=data.val.of_group(0), test=data.test.of_group(0))
    if model.calendar:  # the target's calendar as more columns of every window
        data = with_calendar(data)
    settings = replace(settings, model=model)
    device = torch.device(settings.device)
    naive_val, naive_test = (naive_costs(data, split, settings.cost) for split in ("val", "test"))
    logger.info(
        "data %s: K=%d window=%d steps interval=%d min, %d/%d/%d train/val/test windows",
        data.source,
        n_vnfs,
        data.n_steps,
        data.interval_minutes,
        len(data.train),
        len(data.val),
        len(data.test),
    )
    train, val, test = (_split(ws, device) for ws in (data.train, data.val, data.test))
    return Prepared(data, train, val, test, naive_val, naive_test), settings


def served_site(data: Dataset, n_vnfs: int) -> Dataset:
    """Windows of every site's columns whose targets, scaler and cells are the served site's
    (its K columns come first)."""

    def targets_of_site(windows: WindowSet) -> WindowSet:
        return replace(windows, targets=np.ascontiguousarray(windows.targets[:, :n_vnfs]))

    return replace(
        data,
        train=targets_of_site(data.train),
        val=targets_of_site(data.val),
        test=targets_of_site(data.test),
        scaler=data.scaler.subset(slice(0, n_vnfs)),
        n_vnfs=n_vnfs,
        cell_ids=data.cell_ids[:n_vnfs],
    )


def naive_costs(data: Dataset, split: str, cost: CostConfig) -> dict[str, float]:
    """Mean per-window cost of each naive baseline (fitted on train) on one split."""
    return {kind: float(c.mean()) for kind, c in naive_window_costs(data, split, cost).items()}


def naive_window_costs(data: Dataset, split: str, cost: CostConfig) -> dict[str, np.ndarray]:
    """(M,) cost of each naive baseline (ddnn.naive, fitted on train) on every window of a split."""
    k = data.n_vnfs  # the naive forecasts read the served site's columns only
    fitted = fit_naive_baselines(
        data.train.inputs[..., :k], data.train.targets, data.steps_per_day, cost
    )
    windows: WindowSet = getattr(data, split)
    return {
        kind: sample_cost_np(f.predict(windows.inputs[..., :k]), windows.targets, cost)
        for kind, f in fitted.items()
    }


def _split(windows: WindowSet, device: torch.device) -> Split:
    return Split(
        inputs=torch.from_numpy(windows.inputs).to(device),
        targets=torch.from_numpy(windows.targets).to(device),
        windows=windows,
    )
