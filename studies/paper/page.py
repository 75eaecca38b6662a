"""docs/RESULTS.md: every case's Fig. 3, Fig. 4 and Table II, its numbers with their intervals,
and the paper's key observations 1-7 marked yes / no / partly, each with the interval behind it
and, where ours differs, the likely reason; then the goals of issue 10 (studies.paper.goals),
met or not. Written from the cases' summary.json only."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ddnn.policies import CONFIDENCE
from studies.paper.goals import goals_section
from studies.paper.verdicts import key_observations

COST_ROWS = (
    "all_remote",
    "all_local",
    "centralized_lstm",
    "centralized_lstm_wide",
    "deepcog",
    "lightgbm",
    "last_value",
    "last_value_no_margin",
    "seasonal_naive",
    "seasonal_naive_no_margin",
    "best_constant",
)


def write_results_page(out: Path, path: Path, command: str, names: Sequence[str]) -> None:
    """The page of every case in `names` whose summary.json is in `out` (cases may come from
    separate invocations: each section gives its own size and time)."""
    summaries = {
        name: json.loads((out / name / "summary.json").read_text(encoding="utf-8"))
        for name in names
        if (out / name / "summary.json").exists()
    }
    lines = [
        "# Results: the paper's experiments, with intervals",
        "",
        "Made by `make paper` (every case; `CASES=` runs some of them, and this page is rebuilt "
        "from every case's `summary.json` in the output folder). This page was written by "
        f"`{command}`. Every number is a mean cost per test window "
        "(Eq. 9 / M, normalised units) pooled over folds, groups of cells and seeds, with a 95 % "
        "interval from a paired block bootstrap by day; nothing was chosen on a test window "
        "(cells by training totals; thresholds, margins, the strict reference and checkpoints "
        "on training or validation windows). See `docs/protocol.md` for the protocol.",
        "",
    ]
    for name, summary in summaries.items():
        lines += case_section(name, summary, out / name, path.parent)
    lines += goals_section(summaries)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _named(levers: Mapping[str, Any]) -> str:
    return ", ".join(f"`{key}={value}`" for key, value in levers.items())


def levers_line(levers: Mapping[str, Any]) -> str:
    if not levers:
        return "Models: `DDNNConfig.paper()`, no lever."
    return (
        f"Models: `DDNNConfig.paper()` with {_named(levers)}, chosen on validation folds "
        "([ablation](ablation.md)); every model it applies to reads it (the DDNN's cloud, the "
        "centralized LSTMs, DeepCog)."
    )


def lever_effect_lines(effect: Mapping[str, Any] | None) -> list[str]:
    """The case's levers on its test windows, paired against the same runs without them."""
    if not effect:
        return []
    lines = [
        f"### The levers on the test windows ({_named(effect['levers'])} minus `--paper-models`)",
        "",
        "The same runs (folds, groups, seeds) trained with and without the levers, paired window "
        "by window; a negative difference: the lever lowers the test cost.",
        "",
        "| model | with | without | difference | 95 % interval |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in effect["models"].items():
        low, high = row["ci"]
        lines.append(
            f"| {name} | {row['with']:.4f} | {row['without']:.4f} | "
            f"{row['difference']:+.4f} | [{low:+.4f}, {high:+.4f}] |"
        )
    return [*lines, ""]


def case_section(name: str, s: Mapping[str, Any], folder: Path, page_dir: Path) -> list[str]:
    protocol, case = s["protocol"], s["case"]
    rel = Path(os.path.relpath(folder, page_dir))
    folds = "; ".join(
        f"{f['name']} (test {f['test_start']} to {f['test_end']})" for f in protocol["folds"]
    )
    lines = [
        f"## {case['title']} (`{name}`)",
        "",
        f"Data `{s['data']['source']}`, K = {s['data']['k']}, N = {s['data']['n']}, "
        f"{s['data']['interval_minutes']} min. Folds: {folds}. {protocol['groups']} group(s) x "
        f"{protocol['seeds']} seed(s) x {len(protocol['folds'])} fold(s) = {protocol['units']} "
        f"runs, {protocol['test_windows']} test windows ({', '.join(map(str, protocol['test_windows_per_unit']))} "
        f"per run) on {s['test_days']} fold-days. DeepCog's grid: {case['deepcog_grid']}. "
        f"Weight pair of the numbers below: (w_L, w_R) = ({s['w_local']:g}, {1 - s['w_local']:.3g}).",
        "",
        levers_line(s["data"].get("levers", {})),
        "",
        f"![Fig. 3]({rel / 'tradeoff.png'})",
        "",
        f"![Fig. 4]({rel / 'allocation.png'})",
        "",
        *cost_table(s),
        *comparison_lines(s),
        *policy_table(s),
        *difference_lines(s),
        *lever_effect_lines(s.get("lever_effect")),
        "### Table II (ms per sample)",
        "",
        *latency_lines(s["latency_ms"]),
        "### The paper's key observations",
        "",
        *observations(s),
    ]
    return [*lines, *time_lines(protocol)]


def time_lines(protocol: Mapping[str, Any]) -> list[str]:
    """What the runs cost: every run's training time as recorded when it ran (so a report
    rebuilt from cached runs says it too), and what this invocation trained."""
    recorded = protocol.get("units_with_recorded_seconds")
    if recorded is None:  # a summary written before runs recorded their time: as it said then
        return _invocation_time(protocol)
    if not recorded:
        return []
    line = (
        f"Time: {recorded} runs, {protocol['mean_unit_seconds']:.0f} s of one core each on "
        f"average (recorded when each was trained)"
    )
    trained = protocol["units_trained_this_invocation"]
    if trained:
        line += (
            f"; this invocation trained {trained} in "
            f"{protocol['wall_seconds_this_invocation'] / 60:.0f} min wall"
        )
    return [line + ".", ""]


def _invocation_time(protocol: Mapping[str, Any]) -> list[str]:
    trained = protocol["units_trained_this_invocation"]
    if not trained:
        return []
    return [
        f"Time: {trained} runs trained in {protocol['wall_seconds_this_invocation'] / 60:.0f} "
        f"min wall ({protocol['mean_unit_seconds']:.0f} s per run on one core).",
        "",
    ]


def ci(values: list[float], digits: int = 3) -> str:
    return f"[{values[0]:.{digits}f}, {values[1]:.{digits}f}]"


def cost_table(s: Mapping[str, Any]) -> list[str]:
    costs, intervals = s["costs"], s["costs_ci"]
    lines = ["| model (never offloads) | test cost | 95 % interval |", "| --- | --- | --- |"]
    for name in COST_ROWS:
        if name in costs:
            lines.append(f"| {name} | {costs[name]:.4f} | {ci(intervals[name], 4)} |")
    strict = s["references"]["strict"]
    return [*lines, "", f"Strict reference (lowest validation cost): `{strict}`.", ""]


def comparison_lines(s: Mapping[str, Any]) -> list[str]:
    lines = ["| comparison (1 - remote / other) | value | 95 % interval |", "| --- | --- | --- |"]
    for key, block in s["comparisons"].items():
        label = key + (f" ({block['baseline']})" if "baseline" in block else "")
        lines.append(f"| {label} | {block['relative']:+.3f} | {ci(block['ci'])} |")
    return [*lines, ""]


def policy_table(s: Mapping[str, Any]) -> list[str]:
    lines = [
        "| policy | share local at the centralized LSTM's cost | at the strict reference's | "
        "gap closed | at the knobs chosen on validation: share, cost |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, p in s["policies"].items():
        chosen = p.get("chosen")
        at_chosen = (
            f"{chosen['share']:.2f}, {chosen['cost']:.4f} {ci(chosen['cost_ci'], 4)}"
            if chosen
            else "-"
        )
        lines.append(
            f"| {name} | {p['share_local_at_reference']:.2f} {ci(p['share_local_at_reference_ci'], 2)} "
            f"| {p['share_local_at_best']:.2f} {ci(p['share_local_at_best_ci'], 2)} "
            f"| {p['gap_closed']:.2f} {ci(p['gap_closed_ci'], 2)} | {at_chosen} |"
        )
    return [
        *lines,
        "",
        "Shares are measured operating points (each run keeps exactly that share of its windows "
        "local, by its own scores); between two points only a randomised mix of their thresholds "
        "is achievable.",
        "",
    ]


def difference_lines(s: Mapping[str, Any]) -> list[str]:
    rows = s["ml_minus_confidence"]
    lines = ["| share local | ML minus confidence | 95 % interval |", "| --- | --- | --- |"]
    lines += [f"| {r[0]:.1f} | {r[1]:+.4f} | [{r[2]:+.4f}, {r[3]:+.4f}] |" for r in rows]
    return [*lines, ""]


def latency_lines(latency: Mapping[str, Any]) -> list[str]:
    shares = [k for k in latency if k.isdigit()]
    lines = [
        "| L (% local) | " + " | ".join(shares) + " | centralized LSTM | DeepCog |",
        "|" + " --- |" * (len(shares) + 3),
        "| T, ML policy | "
        + " | ".join(f"{latency[k]:.2f}" for k in shares)
        + f" | {latency.get('centralized_lstm', float('nan')):.2f} | {latency.get('deepcog', float('nan')):.2f} |",
    ]
    confidence = latency.get(CONFIDENCE.name, {})
    if confidence:
        lines.append(
            "| T, confidence policy | "
            + " | ".join(f"{confidence[k]:.2f}" for k in shares)
            + " | | |"
        )
    return [*lines, ""]


def observations(s: Mapping[str, Any]) -> list[str]:
    return [
        f"{i}. **{verdict}**: {text}" for i, (verdict, text) in enumerate(key_observations(s), 1)
    ] + [""]
