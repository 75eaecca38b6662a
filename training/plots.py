"""Figures of Sec. V (matplotlib, Agg backend: no display needed) and the trade-off CSV.

- Fig. 3, ``tradeoff.png``: mean cost vs share resolved locally, one panel per weight pair, with the
  five policies' measured operating points (one per share of the common axis: every run keeps
  exactly that share local), the paper's ML points (one classifier per C_T) with the dashed
  segments that only a randomised mix of two of them reaches, the centralized baselines and
  LightGBM as points at 0 % local, and the naive baselines as horizontal reference lines.
- Fig. 4, ``allocation.png``: demand and both exits' allocations for one base station over the
  test split (in data units), one panel per weight pair.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ddnn.policies import CONFIDENCE, COST_AWARE, ML, ORACLE, RANDOM  # noqa: E402

POLICY_STYLE = {
    ORACLE.name: ("k", "-", ORACLE.name),
    RANDOM.name: ("0.5", "--", RANDOM.name),
    CONFIDENCE.name: ("tab:orange", "-", "confidence (MC dropout)"),
    ML.name: ("tab:blue", "-", "ML classifier"),
    COST_AWARE.name: ("tab:green", "-", "cost-aware (ours)"),
}
BASELINE_MARKERS = {
    "centralized_lstm": "s",
    "centralized_lstm_wide": "D",
    "deepcog": "^",
    "lightgbm": "P",
}
NAIVE_STYLE: dict[str, str | tuple[int, tuple[int, ...]]] = {
    "best_constant": ":",
    "last_value": "-.",
    "last_value_no_margin": (0, (1, 1)),
    "seasonal_naive": (0, (5, 2, 1, 2)),
    "seasonal_naive_no_margin": (0, (3, 1, 1, 1, 1, 1)),
}


@dataclass(frozen=True)
class TradeoffPanel:
    title: str  # e.g. "(w_L, w_R) = (0.9, 0.1)"
    curves: Mapping[str, np.ndarray]  # policy -> (P, 2) measured share local, mean cost
    sparse: Mapping[str, np.ndarray] = field(default_factory=dict)  # few measured points


@dataclass(frozen=True)
class AllocationPanel:
    title: str
    time: np.ndarray  # (M,) x axis (hours since the start of the test split)
    demand: np.ndarray  # (M,) data units
    local: np.ndarray  # (M,)
    remote: np.ndarray  # (M,)


def tradeoff_figure(
    panels: Sequence[TradeoffPanel],
    baselines: Mapping[str, float | None],
    naive: Mapping[str, float | None],
    path: Path,
) -> None:
    """One panel per weight pair; reference lines far above the curves are named, not drawn."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False, sharey=True
    )
    top = _y_top(panels, baselines, naive)
    for ax, panel in zip(axes[0], panels, strict=True):
        for policy, curve in panel.curves.items():
            colour, style, label = POLICY_STYLE.get(policy, ("tab:red", "-", policy))
            ax.plot(100 * curve[:, 0], curve[:, 1], color=colour, linestyle=style, label=label)
        for name, points in panel.sparse.items():
            ax.plot(100 * points[:, 0], points[:, 1], "o", color="tab:cyan", label=name)
            ax.plot(
                100 * points[:, 0],
                points[:, 1],
                ":",
                color="tab:cyan",
                label="(dotted: randomised mix of two of them)",
            )
        for name, value in baselines.items():
            if value is not None:
                marker = BASELINE_MARKERS.get(name, "o")
                ax.plot(0, value, marker, color="tab:purple", label=f"{name} {value:.3g}")
        for name, value in naive.items():
            if value is None:
                continue
            dashes = NAIVE_STYLE.get(name, ":")
            if value <= top:
                ax.axhline(value, color="tab:brown", linestyle=dashes, label=f"{name} {value:.3g}")
            else:  # an empty line keeps it in the legend with its value
                ax.plot(
                    [],
                    [],
                    color="tab:brown",
                    linestyle=dashes,
                    label=f"{name} {value:.3g} (off scale)",
                )
        ax.set_ylim(top=top)
        ax.set_title(panel.title)
        ax.set_xlabel("samples resolved locally (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean cost per sample (Eq. 9 / M)")
    axes[0][-1].legend(fontsize=7, loc="best")
    _save(fig, path)


def _y_top(
    panels: Sequence[TradeoffPanel],
    baselines: Mapping[str, float | None],
    naive: Mapping[str, float | None],
) -> float:
    """Room for the curves and baselines, and for naive lines up to 1.5x the highest curve."""
    curve_top = max(float(c[:, 1].max()) for p in panels for c in p.curves.values())
    shown = [curve_top, *(v for v in baselines.values() if v is not None)]
    shown += [v for v in naive.values() if v is not None and v <= 1.5 * curve_top]
    return 1.08 * max(shown)


def allocation_figure(panels: Sequence[AllocationPanel], ylabel: str, path: Path) -> None:
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.0 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        ax.plot(panel.time, panel.demand, color="k", linewidth=1.2, label="demand d")
        ax.plot(panel.time, panel.local, color="tab:orange", linewidth=0.9, label="local y_L")
        ax.plot(panel.time, panel.remote, color="tab:blue", linewidth=0.9, label="remote y_R")
        ax.set_title(panel.title)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1][0].set_xlabel("hours since the start of the test period")
    _save(fig, path)


def write_tradeoff_csv(
    panels: Sequence[TradeoffPanel],
    baselines: Mapping[str, float | None],
    naive: Mapping[str, float | None],
    path: Path,
) -> None:
    """Long format: panel, kind (curve | points | baseline | naive), name, share_local, cost."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["panel", "kind", "name", "share_local", "mean_cost"])
        for panel in panels:
            for policy, curve in panel.curves.items():
                writer.writerows([panel.title, "curve", policy, s, c] for s, c in curve)
            for name, points in panel.sparse.items():
                writer.writerows([panel.title, "points", name, s, c] for s, c in points)
        writer.writerows(["", "baseline", k, 0.0, v] for k, v in baselines.items() if v is not None)
        writer.writerows(["", "naive", k, "", v] for k, v in naive.items() if v is not None)


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
