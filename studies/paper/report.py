"""A case's pooled report (training.report: summary.json, Fig. 3, Fig. 4, Table II) plus what only
a study has: the protocol, comparisons between weight pairs and the under-provisioning rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ddnn.baselines import BASELINES
from ddnn.config import OffloaderConfig
from ddnn.model import DDNN
from ddnn.offloader import Offloader
from studies.paper.cases import Case
from studies.paper.page import write_results_page
from studies.paper.units import (
    StudyConfig,
    Unit,
    applied_levers,
    for_case,
    load_records,
    recorded_seconds,
    unit_settings,
)
from training.latency import LatencyTable, measure_latency
from training.records import ALL_LOCAL, ALL_REMOTE, WindowRecord
from training.report import write_report
from training.summary import REFERENCE, Pool

__all__ = ["write_case_report", "write_results_page"]


def write_case_report(
    case: Case,
    units: Sequence[Unit],
    config: StudyConfig,
    out: Path,
    *,
    n_boot: int,
    timing: tuple[float, Mapping[str, float]],
) -> dict[str, Any]:
    """Pool every unit's records of the case and write its report in `out`."""
    records = load_records(units, config)
    primary = config.weights[0]
    extra = {
        "protocol": protocol(
            case, units, records[primary], timing, recorded_seconds(units, config)
        ),
        "weight_pairs": pair_comparisons(records, n_boot),
        "under_provisioned": under_provisioned(records, n_boot),
        "case": {"name": case.name, "title": case.title, "deepcog_grid": case.layout},
        "w_local": primary,
    }
    effect = lever_effect(case, units, config, n_boot)
    if effect is not None:
        extra["lever_effect"] = effect
    data = {
        "source": case.filename,
        "k": case.n_vnfs,
        "n": unit_settings(units[0], config).model.n_steps,
        "interval_minutes": case.interval_minutes,
        "split": "target",
        "levers": applied_levers(case, config),
    }
    latency = untrained_latency(units[0], config)
    return write_report(out, data, records, primary, latency, extra, n_boot=n_boot)


def protocol(
    case: Case,
    units: Sequence[Unit],
    records: Sequence[WindowRecord],
    timing: tuple[float, Mapping[str, float]],
    recorded: Mapping[str, float],
) -> dict[str, Any]:
    """`timing`: this invocation's wall seconds and its trained units' seconds; `recorded`:
    every unit's seconds as recorded when it was trained (cached runs' too)."""
    wall, seconds = timing
    folds = [case.folds[i].describe() for i in sorted({u.fold for u in units})]
    return {
        "split": "target",
        "folds": folds,
        "groups": len({u.group for u in units}),
        "seeds": len({u.seed for u in units}),
        "units": len(units),
        "test_windows": sum(r.n_windows for r in records),
        "test_windows_per_unit": sorted({r.n_windows for r in records}),
        "wall_seconds_this_invocation": round(wall, 1),
        "units_trained_this_invocation": len(seconds),
        "units_with_recorded_seconds": len(recorded),
        # over every unit whose training time is recorded, this invocation's or cached
        "mean_unit_seconds": round(float(np.mean(list(recorded.values()))), 1)
        if recorded
        else None,
    }


def lever_effect(
    case: Case, units: Sequence[Unit], config: StudyConfig, n_boot: int
) -> dict[str, Any] | None:
    """The case's levers on the test windows: every model's cost with them minus without them
    (--paper-models), paired window by window (the same units, folds and windows), when the runs
    of both are in the cache; None otherwise."""
    if not case.levers or not config.case_levers:
        return None
    plain = for_case(case, replace(config, case_levers=False))
    if not all(unit.done(plain) for unit in units):
        return None
    w = config.weights[0]
    records = load_records(units, config)[w], load_records(units, plain)[w]
    if any(not np.array_equal(a.blocks, b.blocks) for a, b in zip(*records, strict=True)):
        raise ValueError(f"{case.name}: the runs with and without the levers test other windows")
    with_levers, without = (Pool(r, n_boot, seed=0) for r in records)
    models: dict[str, Any] = {}
    for name in sorted(set(with_levers.references) & set(without.references)):
        a, b = with_levers.references[name], without.references[name]
        diff = with_levers.boot.statistic(lambda x, y: x - y, a, b)
        models[name] = {
            "with": float(a.mean()),
            "without": float(b.mean()),
            "difference": diff.value,
            "ci": diff.as_list(),
        }
    return {"levers": dict(case.levers), "models": models}


def pair_comparisons(
    records: Mapping[float, Sequence[WindowRecord]], n_boot: int
) -> dict[str, Any]:
    """Each pair's exits against the centralized LSTM, and every pair against the first."""
    pairs = list(records)
    pools = {w: Pool(records[w], n_boot, seed=0) for w in pairs}
    found: dict[str, Any] = {}
    for w in pairs:
        pool = pools[w]
        reference = pool.references[REFERENCE]
        found[f"{w:g}"] = {
            exit_name: _relative(pool, pool.references[exit_name], reference)
            for exit_name in (ALL_LOCAL, ALL_REMOTE)
        }
    first = pairs[0]
    for w in pairs[1:]:
        joint = pools[first]  # same units in the same order: the windows are aligned
        for exit_name in (ALL_LOCAL, ALL_REMOTE):
            a = pools[first].references[exit_name]
            b = pools[w].references[exit_name]
            diff = joint.boot.statistic(lambda x, y: x - y, a, b)
            found[f"{first:g}_minus_{w:g}_{exit_name}"] = {
                "difference": diff.value,
                "ci": diff.as_list(),
            }
    return found


def _relative(pool: Pool, model: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """1 - model / centralized LSTM (positive: cheaper than the paper's centralized model)."""
    found = pool.boot.statistic(lambda m, r: 1.0 - m / r, model, reference)
    return {"relative_to_centralized": found.value, "ci": found.as_list()}


def under_provisioned(
    records: Mapping[float, Sequence[WindowRecord]], n_boot: int
) -> dict[str, Any]:
    """The share of allocations below the demand, per pair and exit (Key observation 6)."""
    found: dict[str, Any] = {}
    for w, pair_records in records.items():
        if not all(r.under for r in pair_records):
            continue
        pool = Pool(pair_records, n_boot, seed=0)
        for exit_name in ("local", "remote"):
            values = np.concatenate([r.under[exit_name] for r in pair_records])
            share = pool.boot.mean(values)
            found[f"{w:g}/{exit_name}"] = {"share": share.value, "ci": share.as_list()}
    return found


def untrained_latency(unit: Unit, config: StudyConfig) -> LatencyTable:
    """Table II from models of the case's sizes: compute time does not depend on the weights."""
    settings = unit_settings(unit, config)
    model = settings.model
    offloader = OffloaderConfig(model.n_steps, model.n_vnfs, settings.offloader.hidden)
    baselines = {name: BASELINES[name](model) for name in BASELINES}
    return measure_latency(DDNN(model), Offloader(offloader), baselines)
