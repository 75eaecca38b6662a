"""Reports of an evaluation: summary.json, the figures and the latency table, in --out and MLflow.

<out>/summary.json   the numbers (schema of issue 3) plus the sweep and the champion
<out>/tradeoff.png   Fig. 3, one panel per weight pair      <out>/tradeoff.csv  its data
<out>/allocation.png Fig. 4, one panel per weight pair
<out>/latency.md     Table II                               <out>/latency.csv   its data
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddnn.baselines import BASELINES
from ddnn.cost import ExitCosts
from ddnn.naive import NAIVE_KINDS
from training import plots, tracking
from training.config import Settings
from training.data import Prepared
from training.latency import LatencyTable

BASELINE_KEYS = tuple(BASELINES)
NAIVE_KEYS = NAIVE_KINDS

RESULT_FILES = (
    "summary.json",
    "tradeoff.png",
    "tradeoff.csv",
    "allocation.png",
    "latency.csv",
    "latency.md",
)


@dataclass
class Evaluation:
    """The experiments' results for one DDNN (one weight pair) on the test split."""

    w_local: float
    curves: dict[str, np.ndarray]
    policies: dict[str, Any]  # summary.json's "policies" block
    val_best_cost: float  # the champion rule's score
    test: ExitCosts
    test_local: np.ndarray  # (M, K) local exit (scaled units)
    test_remote: np.ndarray  # (M, K) remote exit


def write_report(
    settings: Settings,
    prepared: Prepared,
    evaluations: Sequence[Evaluation],
    champion: Evaluation,
    baseline_costs: Mapping[str, float],
    latency: LatencyTable,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """summary.json, tradeoff.png/.csv, allocation.png, latency.csv/.md in --out and the run."""
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    data = prepared.data
    summary = build_summary(
        data={
            "source": data.source,
            "k": data.n_vnfs,
            "n": data.n_steps,
            "interval_minutes": data.interval_minutes,
            "test_samples": len(data.test),
        },
        test=champion.test,
        baseline_costs=baseline_costs,
        policies=champion.policies,
        latency=latency,
        extra=extra,
    )
    write_json(out / "summary.json", summary)
    baseline_points = {k: baseline_costs.get(k) for k in BASELINE_KEYS}
    naive_lines = {k: baseline_costs.get(k) for k in NAIVE_KEYS}
    panels = [plots.TradeoffPanel(_pair_title(e.w_local), e.curves) for e in evaluations]
    plots.tradeoff_figure(panels, baseline_points, naive_lines, out / "tradeoff.png")
    plots.write_tradeoff_csv(
        {e.w_local: e.curves for e in evaluations},
        baseline_points,
        naive_lines,
        out / "tradeoff.csv",
    )
    plots.allocation_figure(
        [allocation_panel(e, prepared) for e in evaluations],
        "demand (data units)",
        out / "allocation.png",
    )
    _write_latency(latency, out)
    for name in RESULT_FILES:
        tracking.log_artifact(out / name, "results")
    tracking.log_metrics(_summary_metrics(summary))
    return summary


def build_summary(
    *,
    data: Mapping[str, Any],
    test: ExitCosts,
    baseline_costs: Mapping[str, float | None],
    policies: Mapping[str, Any],
    latency: LatencyTable,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The schema of issue 3 (mean per-sample costs on the test split, normalised units)."""
    costs: dict[str, float | None] = {
        "all_local": float(test.local.mean()),
        "all_remote": float(test.remote.mean()),
    }
    for key in (*BASELINE_KEYS, *NAIVE_KEYS):
        value = baseline_costs.get(key)
        costs[key] = None if value is None or not math.isfinite(value) else float(value)
    summary: dict[str, Any] = {
        "data": dict(data),
        "costs": costs,
        "policies": dict(policies),
        "latency_ms": latency.summary(),
    }
    return summary | dict(extra or {})


def allocation_panel(evaluation: Evaluation, prepared: Prepared) -> plots.AllocationPanel:
    """Fig. 4 for the served cell with the highest mean test demand (group 0), in data units."""
    data = prepared.data
    served = data.test.group == 0
    scaler = data.scaler
    demand = scaler.inverse(data.test.targets[served])
    vnf = int(np.argmax(demand.mean(axis=0)))
    rows = data.test.target_index[served]
    hours = (rows - rows[0]) * data.interval_minutes / 60.0
    return plots.AllocationPanel(
        title=f"{_pair_title(evaluation.w_local)}, cell {data.cell_ids[vnf]} (test split)",
        time=hours,
        demand=demand[:, vnf],
        local=scaler.inverse(evaluation.test_local[served])[:, vnf],
        remote=scaler.inverse(evaluation.test_remote[served])[:, vnf],
    )


def _pair_title(w_local: float) -> str:
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
    costs = summary["costs"]
    metrics: dict[str, float | None] = {
        "test_cost_all_local": costs["all_local"],
        "test_cost_all_remote": costs["all_remote"],
    }
    metrics |= {f"test_cost_{k}": costs[k] for k in (*BASELINE_KEYS, *NAIVE_KEYS)}
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
