"""The paper study end to end on synthetic data with tiny budgets: every figure and table is
written, and the numbers agree with each other."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from studies.paper.__main__ import main
from studies.paper.cases import SYNTHETIC_CASE
from studies.paper.goals import cloud_goals
from studies.paper.units import StudyConfig, units_of

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def study_args(folder: Path, out: str) -> list[str]:
    """The small study, cached in folder/cache, reported in folder/out."""
    args = ["--cases", "synthetic", "--seeds", "2", "--quick", "--n-steps", "24", "--jobs", "1"]
    return [*args, "--boot", "300", "--cache", str(folder / "cache"), "--out", str(folder / out)]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("study")
    main([*study_args(folder, "out"), "--results", str(folder / "RESULTS.md")])
    summary = json.loads((folder / "out" / "synthetic" / "summary.json").read_text())
    return folder, summary


def test_every_figure_and_table_is_written(study: tuple[Path, dict[str, Any]]) -> None:
    folder, summary = study
    for name in ("summary.json", "tradeoff.png", "tradeoff.csv", "allocation.png", "latency.md"):
        assert (folder / "out" / "synthetic" / name).stat().st_size > 0, name
    page = (folder / "RESULTS.md").read_text()
    assert "![Fig. 3](out/synthetic/tradeoff.png)" in page and "### Table II" in page
    assert page.count("**yes**") + page.count("**no**") + page.count("**partly**") == 7
    assert "## The cloud's goals (issue 10)" in page


def test_protocol_and_keys_of_issue_9(study: tuple[Path, dict[str, Any]]) -> None:
    _, summary = study
    protocol = summary["protocol"]
    assert protocol["split"] == "target" and len(protocol["folds"]) == 2
    assert (protocol["groups"], protocol["seeds"], protocol["units"]) == (2, 2, 8)
    for key in ("last_value_no_margin", "seasonal_naive_no_margin", "lightgbm"):
        assert key in summary["costs"] and key in summary["costs_ci"]
    assert set(summary["comparisons"]) == {
        "remote_vs_centralized",
        "remote_vs_local",
        "remote_vs_best_baseline",
    }
    for block in summary["policies"].values():
        assert {
            "points",
            "share_local_at_best",
            "share_local_at_reference_ci",
            "gap_closed_ci",
        } <= set(block)
    assert set(summary["by_fold"]) == {"days 28-33", "days 33-38"}
    assert len(summary["ml_minus_confidence"]) == 9


def test_numbers_agree_with_each_other(study: tuple[Path, dict[str, Any]]) -> None:
    _, summary = study
    costs, policies = summary["costs"], summary["policies"]
    oracle = np.asarray(policies["oracle"]["points"])
    random = np.asarray(policies["random"]["points"])
    assert np.all(oracle[:, 1] <= random[:, 1] + 1e-9)  # the oracle is never worse than random
    for name, block in policies.items():
        points = np.asarray(block["points"])
        assert points[0, 1] == pytest.approx(costs["all_remote"]), name  # 0 % local
        assert points[-1, 1] == pytest.approx(costs["all_local"]), name  # 100 % local
    assert policies["oracle"]["gap_closed"] == pytest.approx(1.0)
    assert policies["random"]["gap_closed"] == pytest.approx(0.0)
    for where, value, interval in intervals(summary):
        assert interval[0] <= value <= interval[1], where


def intervals(summary: dict[str, Any]) -> list[tuple[str, float, list[float]]]:
    """Every (estimate, interval) pair of the summary and of each fold's."""
    found = []
    for scope, block in [("pooled", summary), *summary["by_fold"].items()]:
        found += [
            (f"{scope} cost {k}", block["costs"][k], block["costs_ci"][k]) for k in block["costs"]
        ]
        found += [(f"{scope} {k}", v["relative"], v["ci"]) for k, v in block["comparisons"].items()]
        for name, p in block["policies"].items():
            for key in ("share_local_at_reference", "share_local_at_best", "gap_closed"):
                found.append((f"{scope} {name} {key}", p[key], p[f"{key}_ci"]))
        found += [
            (f"{scope} ml-conf {r[0]}", r[1], [r[2], r[3]]) for r in block["ml_minus_confidence"]
        ]
    return found


def _body(page: str) -> str:
    """The page below its header line, with figure links as seen from the study folder."""
    return page.split("\n", 3)[3].replace("../out/", "out/")


def test_page_only_rebuilds_the_page_from_the_summaries(
    study: tuple[Path, dict[str, Any]],
) -> None:
    folder, _ = study
    rebuilt = folder / "rebuilt" / "RESULTS.md"
    args = ["--page-only", "--cases", "synthetic", "--out", str(folder / "out")]
    main([*args, "--cache", str(folder / "no-cache"), "--results", str(rebuilt)])
    assert not (folder / "no-cache").exists()  # nothing was trained
    again = rebuilt.read_text()
    assert _body(again) == _body((folder / "RESULTS.md").read_text())
    assert "--page-only" in again.split("\n", 3)[2]


def test_a_report_from_cached_runs_still_says_what_they_cost(
    study: tuple[Path, dict[str, Any]],
) -> None:
    folder, summary = study
    assert summary["protocol"]["units_with_recorded_seconds"] == 8
    assert "Time: 8 runs, " in (folder / "RESULTS.md").read_text()
    # every run cached: nothing trained
    main([*study_args(folder, "again"), "--results", str(folder / "again.md")])
    again = json.loads((folder / "again" / "synthetic" / "summary.json").read_text())["protocol"]
    assert again["units_trained_this_invocation"] == 0
    assert again["mean_unit_seconds"] == summary["protocol"]["mean_unit_seconds"] > 0
    page = (folder / "again.md").read_text()
    assert "Time: 8 runs, " in page and "this invocation trained" not in page


def test_cached_runs_are_reused_only_with_the_same_settings(
    study: tuple[Path, dict[str, Any]],
) -> None:
    folder, _ = study
    same = StudyConfig(cache=folder / "cache", data_dir=None, quick=True, model={"n_steps": 24})
    unit = units_of(SYNTHETIC_CASE, None, 2)[0]
    assert unit.done(same)
    assert not unit.done(replace(same, model={"n_steps": 12}))
    assert not unit.done(replace(same, quick=False))


def test_the_cloud_goals_follow_the_summary(study: tuple[Path, dict[str, Any]]) -> None:
    _, summary = study
    page = cloud_goals(summary)
    assert len(page) == 7
    versus_local = summary["comparisons"]["remote_vs_local"]
    met = versus_local["relative"] >= 0.05 and versus_local["ci"][0] > 0
    assert page[1].met is met and f"{versus_local['relative']:+.3f}" in page[1].measured
    better = replace_comparison(summary, "remote_vs_local", 0.2, [0.1, 0.3])
    assert cloud_goals(better)[1].met
    worse = replace_comparison(summary, "remote_vs_local", 0.2, [-0.1, 0.3])
    assert not cloud_goals(worse)[1].met  # an interval reaching 0 does not meet the goal


def replace_comparison(
    summary: dict[str, Any], key: str, value: float, bounds: list[float]
) -> dict[str, Any]:
    comparisons = {**summary["comparisons"], key: {"relative": value, "ci": bounds}}
    return {**summary, "comparisons": comparisons}
