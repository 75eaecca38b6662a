"""docs/ablation.md: each configuration's validation costs, run by run against the recipe's."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ddnn.policies import CONFIDENCE, COST_AWARE, ML
from studies.ablation.variants import VARIANTS
from training.records import ALL_LOCAL, ALL_REMOTE, WindowRecord

COLUMNS = {
    ALL_LOCAL: "DDNN local",
    ALL_REMOTE: "DDNN remote",
    "centralized_lstm": "centralized LSTM",
    "lightgbm": "LightGBM",
    "last_value": "last value + margin",
    "last_value_no_margin": "last value",
}
T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}


def mean_interval(values: Sequence[float]) -> str:
    """Mean and a 95 % t-interval over runs (runs share data across seeds: a rough guide)."""
    if len(values) < 2:
        return f"{values[0]:+.4f}" if values else "-"
    half = T_975.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    mean = statistics.fmean(values)
    return f"{mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}]"


def write_ablation(
    results: Mapping[tuple[str, str], Sequence[WindowRecord]], path: Path, command: str
) -> None:
    lines = [
        "# The recipe's levers, on validation windows",
        "",
        f"Produced by `{command}`. Each row: the mean validation cost per window over the runs "
        "(folds x groups x seeds) of one configuration; the DDNN is trained at (w_L, w_R) = "
        "(0.9, 0.1); the centralized LSTM gets the same change. `vs recipe` is the paired "
        "difference of the DDNN's remote exit from the recipe's, run by run, with a 95 % "
        "t-interval (runs of one fold share their data, so it is a guide, not a test). Epochs: "
        "the DDNN's best / trained, mean over runs (early stopping fires when trained < budget).",
        "",
    ]
    for case in dict.fromkeys(case for case, _ in results):
        lines += case_table(case, {v: r for (c, v), r in results.items() if c == case})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def paired_interval(
    records: Sequence[WindowRecord],
    recipe: Sequence[WindowRecord],
    value: Callable[[WindowRecord], float],
) -> str:
    """A configuration's value minus the recipe's, run by run (the same folds, groups and
    seeds), as mean_interval."""
    return mean_interval([value(a) - value(b) for a, b in zip(records, recipe, strict=True)])


def gap_closed(policy: str) -> Callable[[WindowRecord], float]:
    return lambda record: float(record.validation[policy]["gap_closed"])


def policy_table(rows: Mapping[str, Sequence[WindowRecord]]) -> list[str]:
    """Each realizable policy's gap closed on the choice windows of validation, mean over runs,
    and (below) its paired difference from the recipe's."""
    policies = [CONFIDENCE.name, ML.name, COST_AWARE.name]
    rows = {name: records for name, records in rows.items() if all(r.validation for r in records)}
    header = "| configuration | " + " | ".join(f"{p}: gap closed" for p in policies) + " |"
    rule = "|" + " --- |" * (len(policies) + 1)
    lines = [header, rule]
    for name, records in rows.items():
        cells = [mean_interval([gap_closed(p)(r) for r in records]) for p in policies]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    recipe = rows.get("recipe")
    others = [name for name in rows if name != "recipe"]
    if recipe is not None and others:
        lines += ["", "Gap closed minus the recipe's, run by run (paired):", "", header, rule]
        for name in others:
            cells = [paired_interval(rows[name], recipe, gap_closed(p)) for p in policies]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""] if rows else []


def case_table(case: str, rows: Mapping[str, Sequence[WindowRecord]]) -> list[str]:
    header = ["configuration", "lever", *COLUMNS.values(), "remote vs recipe", "epochs"]
    lines = [f"## {case}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    recipe = rows.get("recipe")
    for name, records in rows.items():
        cells = [
            f"{np.mean([r.reference_val[key] for r in records]):.4f}"
            if all(key in r.reference_val for r in records)
            else "-"
            for key in COLUMNS
        ]
        versus = "-"
        if recipe is not None and name != "recipe":
            versus = paired_interval(records, recipe, lambda r: r.reference_val[ALL_REMOTE])
        epochs = [r.epochs.get("ddnn", {}) for r in records]
        best = np.mean([e.get("best", np.nan) for e in epochs]) + 1
        run = np.mean([e.get("run", np.nan) for e in epochs])
        lines.append(
            f"| {name} | {VARIANTS[name].lever} | "
            + " | ".join(cells)
            + f" | {versus} | {best:.0f} / {run:.0f} |"
        )
    lines += [f"\n{len(next(iter(rows.values())))} runs per row.", ""]
    return lines + policy_table(rows)
