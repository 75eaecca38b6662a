"""Tests of ddnn.data.sources: load_demand tells the sources apart and combines directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ddnn.data import DataError, load_demand, load_tidy_csv, synthetic_demand
from tests.ddnn.data.samples import (
    MILANO,
    dataverse_day_lines,
    needs_milano,
    small_tidy_lines,
    write_text,
)

pytestmark = pytest.mark.unit


def test_load_demand_sniffs_tidy_and_dataverse_files(tmp_path: Path) -> None:
    tidy = load_demand(write_text(tmp_path / "t.csv", small_tidy_lines()))
    daily = load_demand(write_text(tmp_path / "day.txt", dataverse_day_lines(0, [4])))
    assert tidy.cell_ids == (3, 7)
    assert daily.cell_ids == (4,)
    assert daily.interval_minutes == 10


def test_load_demand_combines_directory_of_tidy_files(tmp_path: Path) -> None:
    write_text(tmp_path / "a.csv", small_tidy_lines())
    write_text(
        tmp_path / "b.csv.gz",
        ["cell_id,timestamp,internet", "11,2013-11-01T00:30:00Z,8", "11,2013-11-01T00:40:00Z,9"],
    )
    series = load_demand(tmp_path)
    assert series.cell_ids == (3, 7, 11)
    assert series.values.shape == (5, 3)
    assert series.values[3:, 2].tolist() == [8.0, 9.0]
    assert np.isnan(series.values[:3, 2]).all()
    assert np.isnan(series.values[4, :2]).all()


def test_load_demand_directory_with_conflicting_cells_raises(tmp_path: Path) -> None:
    write_text(tmp_path / "a.csv", small_tidy_lines())
    write_text(tmp_path / "b.csv", small_tidy_lines())
    with pytest.raises(DataError, match="cell 3 appears in both"):
        load_demand(tmp_path)


def test_load_demand_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data path does not exist"):
        load_demand(tmp_path / "nowhere.csv")


def test_load_demand_synthetic_uses_defaults() -> None:
    assert load_demand("synthetic").fingerprint() == synthetic_demand().fingerprint()


def test_load_demand_unknown_format_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"notes\.csv:1: unknown format"):
        load_demand(write_text(tmp_path / "notes.csv", ["hello,world"]))


@pytest.mark.realdata
@needs_milano
def test_load_demand_rowlevel_sample_matches_tidy_aggregate() -> None:
    rowlevel = load_demand(MILANO / "rowlevel_sample")
    tidy = load_tidy_csv(MILANO / "activity_10min_2013-11-01.csv.gz")
    common = [cell for cell in rowlevel.cell_ids if cell in tidy.cell_ids]
    assert len(rowlevel.cell_ids) == 26
    assert len(common) == 25  # cell 102 is only partly in the sample
    assert rowlevel.start == tidy.start
    np.testing.assert_allclose(
        rowlevel.select(common).values, tidy.select(common).values, rtol=1e-12
    )
