"""A case's levers (the settings that won on its validation folds) reach the paper study's models,
and only theirs: --paper-models and the ablation's recipe keep DDNNConfig.paper()."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import studies.ablation.__main__ as ablation
import studies.paper.__main__ as paper
from studies.paper import units
from studies.paper.cases import SYNTHETIC_CASE
from studies.paper.page import levers_line
from studies.paper.units import StudyConfig, Unit, unit_settings


def _config(**kwargs: Any) -> StudyConfig:
    return StudyConfig(cache=Path("unused"), data_dir=Path("milano"), **kwargs)


def _calendar(case: str, config: StudyConfig) -> bool:
    return unit_settings(Unit(case, fold=0, group=0, seed=0), config).model.calendar


@pytest.mark.unit
def test_the_hourly_case_reads_the_calendar_and_the_block_does_not() -> None:
    assert _calendar("hourly", _config())
    assert not _calendar("block", _config())
    assert not _calendar("tenmin", _config())


@pytest.mark.unit
def test_paper_models_and_explicit_overrides_turn_a_lever_off() -> None:
    assert not _calendar("hourly", _config(case_levers=False))
    assert not _calendar("hourly", _config(model={"calendar": False}))
    assert _calendar("block", _config(model={"calendar": True}))


@pytest.mark.unit
def test_the_ablation_recipe_has_no_case_lever(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[StudyConfig] = []

    def fake_run(units: Sequence[Unit], config: StudyConfig, jobs: int) -> dict[str, float]:
        seen.append(config)
        return {}

    monkeypatch.setattr(ablation, "run_units", fake_run)
    monkeypatch.setattr(ablation, "load_records", lambda units, config: {0.9: []})
    monkeypatch.setattr(ablation, "write_ablation", lambda _, out, __: out.write_text(""))
    args = ["--cases", "hourly", "--groups", "1", "--seeds", "1", "--variants", "recipe"]
    ablation.main([*args, "--data-dir", "milano", "--out", str(tmp_path / "ablation.md")])
    assert [_calendar("hourly", config) for config in seen] == [False]


@pytest.mark.unit
def test_the_page_names_the_levers() -> None:
    assert "no lever" in levers_line({})
    assert "`calendar=True`" in levers_line({"calendar": True})


@pytest.mark.integration
def test_the_study_reports_the_levers_on_the_test_windows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(units, "SYNTHETIC_CASE", replace(SYNTHETIC_CASE, levers={"calendar": True}))
    args = ["--cases", "synthetic", "--groups", "1", "--seeds", "1", "--quick", "--jobs", "1"]
    args += ["--boot", "50", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    summary = tmp_path / "out" / "synthetic" / "summary.json"
    paper.main(args)  # with the levers, before any run without them: nothing to compare
    assert "lever_effect" not in json.loads(summary.read_text())
    paper.main([*args, "--paper-models"])
    assert "lever_effect" not in json.loads(summary.read_text())  # this report is the plain one
    paper.main([*args, "--results", str(tmp_path / "RESULTS.md")])  # both cached: compared
    effect = json.loads(summary.read_text())["lever_effect"]
    assert effect["levers"] == {"calendar": True}
    models = effect["models"]
    for name in ("all_remote", "all_local", "centralized_lstm", "lightgbm", "last_value"):
        row = models[name]
        low, high = row["ci"]
        assert row["difference"] == pytest.approx(row["with"] - row["without"])
        assert low <= row["difference"] <= high
    # the models the calendar does not reach are the same models, trained the same way
    assert models["lightgbm"]["difference"] == 0.0
    assert models["last_value"]["difference"] == 0.0
    assert models["all_remote"]["difference"] != 0.0
    page = (tmp_path / "RESULTS.md").read_text()
    assert "### The levers on the test windows (`calendar=True` minus `--paper-models`)" in page
    assert "Models: `DDNNConfig.paper()` with `calendar=True`" in page
