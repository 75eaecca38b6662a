"""The ablation's markdown report: validation (and test) tables, the gates of issue 4, and the
raw results (resumable: rows of an earlier invocation with the same budget are reused)."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from studies.ablation.cases import CASES, Case
from studies.ablation.runs import CaseResult

EXITS = ("centralized_lstm", "centralized_lstm_wide", "deepcog", "ddnn_local", "ddnn_remote")
EXIT_TITLES = {
    "centralized_lstm": "centralized LSTM",
    "centralized_lstm_wide": "wide LSTM",
    "deepcog": "DeepCog",
    "ddnn_local": "DDNN local",
    "ddnn_remote": "DDNN remote",
}
NAIVE_TITLES = {
    "best_constant": "best constant",
    "last_value": "last value + margin",
    "seasonal_naive": "seasonal naive + margin",
    "last_value_no_margin": "last value, no margin",
    "seasonal_naive_no_margin": "seasonal naive, no margin",
}
# The plain training of the paper's prototypes (issue 4): Adam 1e-3, batch 64, early stopping.
PLAIN_TRAIN: dict[str, Any] = {"schedule": "constant", "clip_norm": 0.0, "warmup_epochs": 0}
GATE_BELOW_CONSTANT = 0.70  # every learned model at least 30 % below the best constant
GATE_LOCAL_SLACK = 1.25  # the local exit within 25 % of last value + margin
GATE_STUDY_MINUTES = 30.0


@dataclass(frozen=True)
class Gate:
    text: str
    passed: bool

    def line(self) -> str:
        return f"- {'PASS' if self.passed else 'FAIL'}: {self.text}"


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def quality_gates(result: CaseResult, row_name: str = "recipe") -> list[Gate]:
    """Issue 4's "Done when" on one row (mean over seeds), against the validation baselines."""
    row = result.row(row_name)
    if row is None:
        return []
    means = {name: mean(row.costs[name]) for name in EXITS if name in row.costs}
    constant, last = result.naive["best_constant"], result.naive["last_value"]
    found = [
        Gate(
            f"{EXIT_TITLES[name]} at least 30 % below the best constant: {value:.4f} <= "
            f"{GATE_BELOW_CONSTANT * constant:.4f}",
            value <= GATE_BELOW_CONSTANT * constant,
        )
        for name, value in means.items()
    ]
    found += [
        Gate(
            f"{EXIT_TITLES[name]} below last value + margin: {means[name]:.4f} < {last:.4f}",
            means[name] < last,
        )
        for name in ("centralized_lstm", "ddnn_remote")
        if name in means
    ]
    if "ddnn_local" in means:
        found.append(
            Gate(
                f"DDNN local within 25 % of last value + margin: {means['ddnn_local']:.4f} <= "
                f"{GATE_LOCAL_SLACK * last:.4f}",
                means["ddnn_local"] <= GATE_LOCAL_SLACK * last,
            )
        )
    return found


STUDY_ROWS = {
    "recipe": "centralized, wide, DeepCog, DDNN at (0.9,0.1)",
    "recipe @ w_L=0.1": "DDNN at (0.1,0.9)",
}


def time_gate(result: CaseResult) -> Gate:
    """Training time per seed of the recipe's models (the rows in STUDY_ROWS that were run)."""
    rows = [row for name in STUDY_ROWS if (row := result.row(name)) is not None]
    minutes = sum(row.seconds_per_seed() for row in rows) / 60
    covered = "; ".join(STUDY_ROWS[row.variant.name] for row in rows)
    missing = [name for name in STUDY_ROWS if result.row(name) is None]
    note = f"; rows not run, so not counted: {missing}" if missing else ""
    return Gate(
        f"the {result.case.name} study trains its models ({covered}) in {minutes:.1f} min per "
        f"seed < {GATE_STUDY_MINUTES:.0f} min (1 torch thread per fit{note})",
        minutes < GATE_STUDY_MINUTES,
    )


def fmt(values: Sequence[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{mean(values):.4f} ± {statistics.stdev(values):.4f}"


TEST_ROWS = ("paper", "recipe", "recipe @ w_L=0.1")


def variant_table(result: CaseResult, split: str = "val") -> list[str]:
    """Rows x exits; split "val" shows every row, "test" only TEST_ROWS (reported, not tuned)."""
    header = ["configuration", *(EXIT_TITLES[e] for e in EXITS), "train min / seed"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    rows = (
        result.variants
        if split == "val"
        else [r for r in result.variants if r.variant.name in TEST_ROWS]
    )
    for row in rows:
        costs = row.costs if split == "val" else row.test_costs
        cells = [fmt(costs.get(e, [])) for e in EXITS]
        minutes = row.seconds_per_seed() / 60
        lines.append(f"| {row.variant.name} | " + " | ".join(cells) + f" | {minutes:.1f} |")
    for kind, value in (result.naive if split == "val" else result.naive_test).items():
        lines.append(
            f"| *{NAIVE_TITLES[kind]}* | " + " | ".join([f"{value:.4f}"] * len(EXITS)) + " | |"
        )
    return lines


def case_report(result: CaseResult, n_seeds: int, quick: bool) -> list[str]:
    case = result.case
    budget = case.quick_train if quick else case.train
    lines = [
        f"## {case.name}: `{case.filename}` ({case.activity}), K={case.n_vnfs}, N={case.n_steps}",
        "",
        f"Validation cost: mean per-sample cost (Eq. 3 summed over the K served cells, "
        f"normalised units), mean ± std over {n_seeds} seed(s). Training budget: {budget}"
        + (" — QUICK MODE: budgets cut to check the command, not a measurement." if quick else "."),
        "",
        *variant_table(result, "val"),
        "",
        "The same models on the test split (reported only; nothing was chosen on it; "
        "it falls in the Christmas holidays):",
        "",
        *variant_table(result, "test"),
        "",
    ]
    gates = quality_gates(result)
    if gates:
        lines += ["Gates of issue 4 (recipe row, mean over seeds):", ""]
        lines += [gate.line() for gate in [*gates, time_gate(result)]]
        lines.append("")
    trained = sum(row.seconds for row in result.variants) / 60
    reused = [row.variant.name for row in result.variants if row.reused]
    lines.append(f"Training time of all rows and seeds (sum of the fits): {trained:.0f} min.")
    if reused:
        lines.append(
            f"{len(reused)} of {len(result.variants)} rows were reused (--resume) from the raw "
            "results of an earlier invocation with the same budget, seeds and models."
        )
    lines.append("")
    return lines


def report(results: Sequence[CaseResult], command: str, n_seeds: int, quick: bool) -> str:
    lines = [
        "# Ablation of the training recipe (issue 4)",
        "",
        f"Produced by `{command}` with {torch.get_num_threads()} torch thread(s) on a shared CPU. "
        "What each configuration means, and what it shows, is in docs/recipe.md.",
        "",
        "- `paper`: `DDNNConfig.paper()` (direct output, no recipe option) trained plainly "
        "(Adam 1e-3, batch 64, constant rate, no clipping, early stopping).",
        "- `paper + X`: one recipe change on top of it; `recipe`: every default together; "
        "`recipe - X`: the recipe with one change undone.",
        "- weight sharing (hourly): the model also trains on the other 9 groups of 16 cells "
        "(groups by activity, busiest first); the served group, its scaler and early stopping "
        "are unchanged.",
        "- DDNN columns are one model at (w_L, w_R) = (0.9, 0.1); `recipe @ w_L=0.1` is the DDNN "
        "trained at (0.1, 0.9).",
        "",
    ]
    for result in results:
        lines += case_report(result, n_seeds, quick)
    return "\n".join(lines) + "\n"


def raw_results(results: Sequence[CaseResult], quick: bool) -> dict[str, Any]:
    return {
        r.case.name: {
            "quick": quick,
            "budget": dict(r.case.quick_train if quick else r.case.train),
            "naive_val": r.naive,
            "naive_test": r.naive_test,
            "seconds": r.seconds,
            "variants": {v.variant.name: {"costs": v.costs, "runs": v.runs} for v in r.variants},
        }
        for r in results
    }


def budget_key(case: Case, quick: bool) -> tuple[bool, dict[str, Any]]:
    return quick, dict(case.quick_train if quick else case.train)


def check_same_budget(earlier: Mapping[str, Any], cases: Sequence[Case], quick: bool) -> None:
    """Refuse to mix runs of another budget (e.g. --quick) into an existing raw-results file."""
    for case in cases:
        old = earlier.get(case.name)
        if old is not None and (old.get("quick"), old.get("budget")) != budget_key(case, quick):
            raise SystemExit(
                f"the --json file holds {case.name} runs with another budget "
                f"(quick={old.get('quick')}, {old.get('budget')}); use another --json file"
            )


def merge_raw(earlier: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """Earlier raw results updated row by row with this invocation's (same budget: checked)."""
    merged = dict(earlier)
    for name, case in current.items():
        old_rows = (earlier.get(name) or {}).get("variants", {})
        merged[name] = {**case, "variants": {**old_rows, **case["variants"]}}
    return merged


def load_cache(path: Path | None, quick: bool) -> dict[str, Any]:
    """Rows of an earlier run with the same budget, by case name, for --resume."""
    if path is None or not path.exists():
        return {}
    raw: dict[str, Any] = json.loads(path.read_text())
    return {
        name: case["variants"]
        for name, case in raw.items()
        if (case.get("quick"), case.get("budget")) == budget_key(CASES[name], quick)
    }
