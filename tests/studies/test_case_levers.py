"""A case's levers (the settings that won on its validation folds) reach the paper study's models,
and only theirs: --paper-models and the ablation's recipe keep DDNNConfig.paper()."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import studies.ablation.__main__ as ablation
from studies.paper.page import levers_line
from studies.paper.units import StudyConfig, Unit, unit_settings

pytestmark = pytest.mark.unit


def _config(**kwargs: Any) -> StudyConfig:
    return StudyConfig(cache=Path("unused"), data_dir=Path("milano"), **kwargs)


def _calendar(case: str, config: StudyConfig) -> bool:
    return unit_settings(Unit(case, fold=0, group=0, seed=0), config).model.calendar


def test_the_hourly_case_reads_the_calendar_and_the_block_does_not() -> None:
    assert _calendar("hourly", _config())
    assert not _calendar("block", _config())
    assert not _calendar("tenmin", _config())


def test_paper_models_and_explicit_overrides_turn_a_lever_off() -> None:
    assert not _calendar("hourly", _config(case_levers=False))
    assert not _calendar("hourly", _config(model={"calendar": False}))
    assert _calendar("block", _config(model={"calendar": True}))


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


def test_the_page_names_the_levers() -> None:
    assert "no lever" in levers_line({})
    assert "`calendar=True`" in levers_line({"calendar": True})
