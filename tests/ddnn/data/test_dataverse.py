"""Tests of ddnn.data.dataverse: Telecom Italia daily files and their GridID re-export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ddnn.data import DataError, load_dataverse
from tests.ddnn.data.samples import (
    NOV_1_LOCAL_MS,
    SLOT_MS,
    dataverse_day_lines,
    expected_dataverse_sum,
    write_text,
)

pytestmark = pytest.mark.unit


def test_load_dataverse_sums_country_codes_over_two_days(tmp_path: Path) -> None:
    day1 = write_text(
        tmp_path / "sms-call-internet-mi-2013-11-01.txt", dataverse_day_lines(0, [5, 2])
    )
    day2 = write_text(
        tmp_path / "sms-call-internet-mi-2013-11-02.txt", dataverse_day_lines(1, [5, 2])
    )
    series = load_dataverse([day2, day1])
    assert series.values.shape == (288, 2)
    assert series.cell_ids == (2, 5)
    assert series.start == np.datetime64("2013-10-31T23:00")
    assert series.values[0, 1] == pytest.approx(expected_dataverse_sum(5, 0, 4))
    assert series.values[144 + 7, 0] == pytest.approx(expected_dataverse_sum(2, 7, 4))
    assert series.gaps().total_missing == 0


@pytest.mark.parametrize(("activity", "index"), [("smsin", 0), ("callout", 3), ("internet", 4)])
def test_load_dataverse_reads_chosen_activity(tmp_path: Path, activity: str, index: int) -> None:
    path = write_text(tmp_path / "day.txt.gz", dataverse_day_lines(0, [9]))
    series = load_dataverse([path], activity=activity)
    assert series.values[3, 0] == pytest.approx(expected_dataverse_sum(9, 3, index))


def test_load_dataverse_marks_empty_and_absent_as_nan(tmp_path: Path) -> None:
    lines = [
        f"1\t{NOV_1_LOCAL_MS}\t39\t1\t1\t1\t1\t",
        f"1\t{NOV_1_LOCAL_MS}\t0\t1\t1\t1\t1\t",
        f"1\t{NOV_1_LOCAL_MS + SLOT_MS}\t39\t1\t1\t1\t1\t2.5",
        f"1\t{NOV_1_LOCAL_MS + SLOT_MS}\t0\t1\t1\t1\t1\t",
        f"1\t{NOV_1_LOCAL_MS + 3 * SLOT_MS}\t39\t1\t1\t1\t1\t4.0",
    ]
    series = load_dataverse([write_text(tmp_path / "day.txt", lines)])
    values = series.values[:, 0]
    assert math.isnan(values[0])  # every country row lacks internet
    assert values[1] == 2.5  # one empty row does not count as 0 but does not hide the other
    assert math.isnan(values[2])  # no row at all
    assert values[3] == 4.0


def test_load_dataverse_reads_rowlevel_comma_format(tmp_path: Path) -> None:
    header = "GridID,TimeInterval,countrycode,smsin,smsout,callin,callout,internet"
    lines = [header, *dataverse_day_lines(0, [4], sep=",")]
    series = load_dataverse([write_text(tmp_path / "part-00000.csv", lines)])
    assert series.values.shape == (144, 1)
    assert series.values[10, 0] == pytest.approx(expected_dataverse_sum(4, 10, 4))


def test_load_dataverse_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    lines = dataverse_day_lines(0, [4])
    fields = lines[5].split("\t")
    lines[5] = "\t".join([fields[0], "noon", *fields[2:]])
    path = write_text(tmp_path / "sms-call-internet-mi-2013-11-01.txt", lines)
    with pytest.raises(DataError, match="time interval") as caught:
        load_dataverse([path])
    assert "sms-call-internet-mi-2013-11-01.txt:6:" in str(caught.value)


def test_load_dataverse_unknown_activity_raises(tmp_path: Path) -> None:
    path = write_text(tmp_path / "day.txt", dataverse_day_lines(0, [4]))
    with pytest.raises(DataError, match="record_count"):
        load_dataverse([path], activity="record_count")
