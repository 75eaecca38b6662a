"""Tests of ddnn.data.tidy: the tidy CSV loader, on small files and on the real Milano data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ddnn.data import DataError, load_tidy_csv
from tests.ddnn.data.samples import MILANO, needs_milano, small_tidy_lines, write_text

pytestmark = pytest.mark.unit


def test_load_tidy_csv_places_values_in_row_and_column(tmp_path: Path) -> None:
    series = load_tidy_csv(write_text(tmp_path / "t.csv", small_tidy_lines()))
    assert series.cell_ids == (3, 7)
    assert series.start == np.datetime64("2013-11-01T00:00")
    assert series.values.shape == (4, 2)
    assert series.values[0].tolist() == [10.0, 1.5]
    assert series.values[2].tolist() == [30.0, 3.5]
    assert series.values[3].tolist() == [40.0, 4.5]


def test_load_tidy_csv_absent_row_and_empty_field_become_nan(tmp_path: Path) -> None:
    series = load_tidy_csv(write_text(tmp_path / "t.csv", small_tidy_lines()))
    assert math.isnan(series.values[1, 0])  # cell 3 has no 00:10 row
    assert math.isnan(series.values[1, 1])  # cell 7 has an empty field at 00:10
    report = series.gaps()
    assert report.missing_per_cell == {3: 1, 7: 1}
    assert report.total_missing == 2


@pytest.mark.parametrize("interval", [10, 60])
def test_load_tidy_csv_infers_interval(tmp_path: Path, interval: int) -> None:
    stamps = np.datetime64("2013-11-01T00:00") + np.arange(5) * np.timedelta64(interval, "m")
    rows = [f"5,{stamp}:00Z,{i}" for i, stamp in enumerate(stamps) if i != 2]
    series = load_tidy_csv(write_text(tmp_path / "t.csv", ["cell_id,timestamp,internet", *rows]))
    assert series.interval_minutes == interval
    assert series.values.shape == (5, 1)
    assert series.timestamps()[-1] == stamps[-1]


def test_load_tidy_csv_infers_interval_as_gcd_of_differences(tmp_path: Path) -> None:
    rows = ["1,2013-11-01T00:00:00Z,1", "1,2013-11-01T00:20:00Z,2", "2,2013-11-01T00:50:00Z,5"]
    series = load_tidy_csv(write_text(tmp_path / "t.csv", ["cell_id,timestamp,internet", *rows]))
    assert series.interval_minutes == 10
    assert series.values.shape == (6, 2)
    assert series.values[2, 0] == 2.0
    assert series.values[5, 1] == 5.0


def test_load_tidy_csv_reads_gzip(tmp_path: Path) -> None:
    plain = load_tidy_csv(write_text(tmp_path / "t.csv", small_tidy_lines()))
    packed = load_tidy_csv(write_text(tmp_path / "t.csv.gz", small_tidy_lines()))
    assert packed.fingerprint() == plain.fingerprint()


def test_load_tidy_csv_sums_duplicate_rows(tmp_path: Path) -> None:
    lines = [
        "cell_id,timestamp,internet",
        "1,2013-11-01T00:00:00Z,2.0",
        "1,2013-11-01T00:00:00Z,0.5",
        "1,2013-11-01T00:10:00Z,1.0",
    ]
    series = load_tidy_csv(write_text(tmp_path / "t.csv", lines))
    assert series.values[:, 0].tolist() == [2.5, 1.0]


def test_load_tidy_csv_missing_activity_names_file_and_columns(tmp_path: Path) -> None:
    path = write_text(tmp_path / "counts.csv", small_tidy_lines())
    with pytest.raises(DataError) as caught:
        load_tidy_csv(path, activity="smsin")
    message = str(caught.value)
    assert "counts.csv" in message
    assert "internet" in message
    assert "source" not in message.split("columns:")[1]  # a text column is not offered


@pytest.mark.parametrize(
    ("bad_line", "complaint"),
    [
        ("3,2013-11-01T00:40:00Z,abc,a", "not a number"),
        ("3,2013-11-01T00:40:00Z,1.0", "fields"),
        ("3,yesterday,1.0,a", "timestamp"),
        ("3.5,2013-11-01T00:40:00Z,1.0,a", "cell id"),
    ],
)
def test_load_tidy_csv_malformed_line_names_file_and_line(
    tmp_path: Path, bad_line: str, complaint: str
) -> None:
    lines = [*small_tidy_lines(), bad_line]
    path = write_text(tmp_path / "broken.csv", lines)
    with pytest.raises(DataError, match=complaint) as caught:
        load_tidy_csv(path)
    assert f"broken.csv:{len(lines)}:" in str(caught.value)


@pytest.mark.realdata
@needs_milano
def test_load_tidy_csv_reads_full_period_internet() -> None:
    series = load_tidy_csv(MILANO / "internet_10min_fullperiod.csv.gz")
    assert series.cell_ids == (4159, 5161)
    assert series.values.shape == (8928, 2)
    assert series.interval_minutes == 10
    assert series.start == np.datetime64("2013-10-31T23:00")
    assert series.gaps().total_missing == 0


@pytest.mark.realdata
@needs_milano
def test_load_tidy_csv_reads_hourly_record_counts() -> None:
    series = load_tidy_csv(MILANO / "cdr_record_count_hourly.csv.gz", activity="record_count")
    assert series.values.shape == (1488, 160)
    assert series.interval_minutes == 60
    assert series.gaps().total_missing == 0
    assert (series.values >= 0).all()
    assert np.array_equal(series.values, np.round(series.values))  # counts of CDR rows
