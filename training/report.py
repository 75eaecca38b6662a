"""Reports of an evaluation: summary.json, the figures and the latency table, in a folder (and
in the active MLflow run). The same report serves one run (`ddnn-train run-all`) and a study
pooled over many (studies/paper): its numbers come from training.summary.

<out>/summary.json   the numbers, with 95 % intervals, for the primary weight pair, and per pair
<out>/tradeoff.png   Fig. 3, one panel per weight pair      <out>/tradeoff.csv  its data
<out>/allocation.png Fig. 4, one panel per weight pair
<out>/latency.md     Table II                               <out>/latency.csv   its data
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddnn.baselines import BASELINES
from ddnn.naive import NAIVE_KINDS
from ddnn.policies import ML
from training import plots, tracking
from training.latency import LatencyTable
from training.records import WindowRecord
from training.summary import pooled_summary

NETWORK_BASELINES = tuple(BASELINES)  # drawn as points at 0 % local
POINT_BASELINES = (*NETWORK_BASELINES, "lightgbm")
NAIVE_KEYS = NAIVE_KINDS  # drawn as horizontal lines
RESULT_FILES = (
    "summary.json",
    "tradeoff.png",
    "tradeoff.csv",
    "allocation.png",
    "latency.csv",
    "latency.md",
)


def write_report(
    out: Path,
    data: Mapping[str, Any],
    records: Mapping[float, Sequence[WindowRecord]],
    primary: float,
    latency: LatencyTable,
    extra: Mapping[str, Any],
    *,
    n_boot: int = 2000,
) -> dict[str, Any]:
    """summary.json, tradeoff.png/.csv, allocation.png, latency.csv/.md in `out` (and the run).

    records: weight pair (w_L) -> the records of its runs; `primary` is the pair whose numbers
    are summary.json's top level (every pair's are under "by_weight_pair").
    """
    out.mkdir(parents=True, exist_ok=True)
    pooled = {w: pooled_summary(r, n_boot=n_boot) for w, r in records.items()}
    top = pooled[primary]
    summary: dict[str, Any] = {
        "data": dict(data) | {"test_samples": top["test_windows"]},
        **top,
        "latency_ms": latency.summary(),
        "by_weight_pair": {f"{w:g}": _pair_block(numbers) for w, numbers in pooled.items()},
    } | dict(extra)
    write_json(out / "summary.json", summary)
    panels = [tradeoff_panel(w, numbers) for w, numbers in pooled.items()]
    points = {k: top["costs"].get(k) for k in POINT_BASELINES}
    naive_lines = {k: top["costs"].get(k) for k in NAIVE_KEYS}
    plots.tradeoff_figure(panels, points, naive_lines, out / "tradeoff.png")
    plots.write_tradeoff_csv(panels, points, naive_lines, out / "tradeoff.csv")
    allocation = [allocation_panel(w, r[0]) for w, r in records.items() if r[0].figure]
    if allocation:
        plots.allocation_figure(allocation, "demand (data units)", out / "allocation.png")
    _write_latency(latency, out)
    for name in RESULT_FILES:
        if (out / name).exists():
            tracking.log_artifact(out / name, "results")
    tracking.log_metrics(_summary_metrics(summary))
    return summary


def _pair_block(numbers: Mapping[str, Any]) -> dict[str, Any]:
    """A weight pair's numbers without the long curves (they are in tradeoff.csv)."""
    policies = {
        name: {k: v for k, v in block.items() if k not in ("curve", "points")}
        for name, block in numbers["policies"].items()
    }
    keep = ("costs", "costs_ci", "comparisons", "references", "ml_minus_confidence")
    return {key: numbers[key] for key in keep} | {"policies": policies}


def tradeoff_panel(w_local: float, numbers: Mapping[str, Any]) -> plots.TradeoffPanel:
    curves = {name: np.asarray(block["points"]) for name, block in numbers["policies"].items()}
    per_ct = np.asarray(numbers["ml_per_transmission_cost"]).reshape(-1, 2)
    sparse = {f"{ML.name}, one classifier per C_T": per_ct} if per_ct.size else {}
    return plots.TradeoffPanel(pair_title(w_local), curves, sparse)


def allocation_panel(w_local: float, record: WindowRecord) -> plots.AllocationPanel:
    """Fig. 4 for the record's drawn cell (the served group's busiest), in data units."""
    figure = record.figure
    return plots.AllocationPanel(
        title=f"{pair_title(w_local)}, cell {int(figure['cell'])} (test, {record.fold})",
        time=figure["hours"],
        demand=figure["demand"],
        local=figure["local"],
        remote=figure["remote"],
    )


def pair_title(w_local: float) -> str:
    return f"(w_L, w_R) = ({w_local:g}, {1 - w_local:.3g})"


def _write_latency(latency: LatencyTable, out: Path) -> None:
    rows = latency.rows()
    lines = ["model,share_local_pct,ms_per_sample"]
    lines += [f"{r['model']},{r['share_local_pct']},{r['ms_per_sample']:.6f}" for r in rows]
    lines += [f"component:{name},,{ms:.6f}" for name, ms in latency.components_ms.items()]
    (out / "latency.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "latency.md").write_text(latency.markdown(), encoding="utf-8")


def _summary_metrics(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The final test metrics of the parent run, with the names the UI compares."""
    metrics: dict[str, float | None] = {f"test_cost_{k}": v for k, v in summary["costs"].items()}
    for policy, values in summary["policies"].items():
        metrics[f"{policy}_share_local_at_reference"] = values["share_local_at_reference"]
        metrics[f"{policy}_gap_closed"] = values["gap_closed"]
    return metrics


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (a temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as tmp:
        json.dump(data, tmp, indent=2, allow_nan=False)
        tmp.write("\n")
    Path(tmp.name).chmod(0o644)  # NamedTemporaryFile makes it private
    Path(tmp.name).replace(path)
