"""The goals of "make the cloud earn its trip" (issue 10), checked on a case's test folds: each
goal's measured value, its 95 % interval where the summary holds a paired one, and met or not.
Read from the case's summary.json only (studies.paper.report writes it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ddnn.policies import CONFIDENCE, COST_AWARE, ML

REALIZABLE = (CONFIDENCE.name, ML.name, COST_AWARE.name)
REMOTE_VS_CENTRALIZED = 0.10  # the aim (the paper: 20-50 %)
REMOTE_VS_LOCAL = 0.05
SHARE_LOCAL = 0.50  # resolved locally at no more than the centralized LSTM's cost
GAP_CLOSED = 0.60  # of the random-to-oracle gap


@dataclass(frozen=True)
class Goal:
    text: str
    measured: str
    met: bool


def interval(values: list[float], digits: int = 3) -> str:
    return f"[{values[0]:+.{digits}f}, {values[1]:+.{digits}f}]"


def relative_goal(s: Mapping[str, Any], key: str, text: str, at_least: float) -> Goal:
    """1 - remote/other at least `at_least` (above 0: the interval too)."""
    block = s["comparisons"][key]
    low = block["ci"][0]
    met = block["relative"] >= at_least and (low > 0 if at_least > 0 else True)
    return Goal(text, f"{block['relative']:+.3f} {interval(block['ci'])}", met)


def persistence_goal(s: Mapping[str, Any]) -> Goal:
    costs = s["costs"]
    exits = {"local": costs["all_local"], "remote": costs["all_remote"]}
    naive = {"last value + margin": costs["last_value"]}
    if "last_value_no_margin" in costs:
        naive["last value"] = costs["last_value_no_margin"]
    measured = ", ".join(f"{k} {v:.4f}" for k, v in {**exits, **naive}.items())
    return Goal(
        "every exit at or below persistence with and without margin",
        f"{measured} (test costs; no paired interval)",
        max(exits.values()) <= min(naive.values()),
    )


def best_policy_goal(s: Mapping[str, Any], field: str, text: str, at_least: float) -> Goal:
    policies = {name: s["policies"][name] for name in REALIZABLE if name in s["policies"]}
    name = max(policies, key=lambda n: policies[n][field])
    best = policies[name]
    value, bounds = best[field], best[f"{field}_ci"]
    return Goal(text, f"{name}: {value:.2f} [{bounds[0]:.2f}, {bounds[1]:.2f}]", value >= at_least)


def ml_vs_confidence_goal(s: Mapping[str, Any]) -> Goal:
    rows = s["ml_minus_confidence"]
    below = sum(1 for row in rows if row[1] <= 0)
    worse = sum(1 for row in rows if row[2] > 0)  # ML significantly costlier
    return Goal(
        "ML at or below confidence at every share",
        f"at or below at {below} of {len(rows)} shares; significantly above at {worse}",
        below == len(rows),
    )


def cloud_goals(s: Mapping[str, Any]) -> list[Goal]:
    best = s["comparisons"]["remote_vs_best_baseline"]
    return [
        relative_goal(
            s,
            "remote_vs_centralized",
            f"remote exit >= {REMOTE_VS_CENTRALIZED:.0%} cheaper than the centralized LSTM",
            REMOTE_VS_CENTRALIZED,
        ),
        relative_goal(
            s,
            "remote_vs_local",
            f"remote exit >= {REMOTE_VS_LOCAL:.0%} cheaper than the local exit",
            REMOTE_VS_LOCAL,
        ),
        relative_goal(
            s,
            "remote_vs_best_baseline",
            f"remote exit at or below the strict reference ({best.get('baseline', '-')})",
            0.0,
        ),
        persistence_goal(s),
        best_policy_goal(
            s,
            "share_local_at_reference",
            f"best offloader resolves >= {SHARE_LOCAL:.0%} locally at the centralized LSTM's cost",
            SHARE_LOCAL,
        ),
        best_policy_goal(
            s, "gap_closed", f"best offloader closes >= {GAP_CLOSED:.0%} of the gap", GAP_CLOSED
        ),
        ml_vs_confidence_goal(s),
    ]


def goals_section(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One table over every case: the goals of issue 10 on the test folds."""
    if not summaries:
        return []
    lines = [
        "## The cloud's goals (issue 10), on the test folds",
        "",
        "Relative values are 1 - remote / other (positive: the remote exit is cheaper), with the "
        "paired 95 % interval of the sections above. Every lever tried to meet them, with its "
        "validation result, is in `docs/ablation.md`.",
        "",
        "| case | goal | measured | met |",
        "| --- | --- | --- | --- |",
    ]
    for name, summary in summaries.items():
        for goal in cloud_goals(summary):
            lines.append(
                f"| {name} | {goal.text} | {goal.measured} | {'yes' if goal.met else 'no'} |"
            )
    return [*lines, ""]
