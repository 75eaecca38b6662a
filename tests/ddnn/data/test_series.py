"""Tests of ddnn.data.series: selection, timestamps, resampling, fingerprint, gap report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddnn.data import DataError, DemandSeries, GapReport
from tests.ddnn.data.samples import series_of

pytestmark = pytest.mark.unit


def test_select_by_list_keeps_order() -> None:
    series = series_of([[1, 2, 3], [4, 5, 6]], cell_ids=[10, 20, 30])
    chosen = series.select([30, 10])
    assert chosen.cell_ids == (30, 10)
    assert chosen.values.tolist() == [[3, 1], [6, 4]]


def test_select_unknown_cell_raises_listing_ids() -> None:
    series = series_of([[1, 2, 3]], cell_ids=[10, 20, 30])
    with pytest.raises(DataError, match=r"unknown cell ids \[99, 98\].*10, 20, 30"):
        series.select([10, 99, 98])


def test_select_top_k_picks_busiest_ordered_by_id() -> None:
    series = series_of([[5.0, 1.0, 9.0, 7.0], [5.0, np.nan, 9.0, 7.0]], cell_ids=[40, 30, 20, 10])
    assert series.select(top_k=2).cell_ids == (10, 20)
    assert series.select(top_k=2).values[0].tolist() == [7, 9]


def test_select_top_k_larger_than_cells_raises() -> None:
    with pytest.raises(DataError, match="top_k=3"):
        series_of([[1, 2]]).select(top_k=3)


def test_select_both_arguments_raises() -> None:
    with pytest.raises(DataError, match="not both"):
        series_of([[1, 2]]).select([1], top_k=1)


def test_create_series_with_wrong_cell_count_raises() -> None:
    with pytest.raises(DataError, match="cell ids"):
        DemandSeries(np.ones((3, 2)), (1,), np.datetime64("2013-11-01T00:00"), 10, "x")


def test_timestamps_step_by_interval() -> None:
    stamps = series_of([[1.0], [2.0], [3.0]]).timestamps()
    assert stamps.dtype == np.dtype("datetime64[m]")
    assert stamps[2] == np.datetime64("2013-11-04T00:20")


def test_resample_sums_blocks_and_propagates_nan() -> None:
    series = series_of([[1.0, 10.0], [2.0, np.nan], [3.0, 30.0], [4.0, 40.0], [5.0, 50.0]])
    hourly = series.resample(20)
    assert hourly.interval_minutes == 20
    assert hourly.values[:, 0].tolist() == [3, 7]  # the incomplete last block is dropped
    assert math.isnan(hourly.values[0, 1])
    assert hourly.values[1, 1] == 70


def test_resample_to_non_multiple_raises() -> None:
    with pytest.raises(DataError, match="multiple"):
        series_of([[1.0], [2.0]]).resample(15)


def test_fingerprint_changes_when_one_value_changes() -> None:
    values = np.arange(12.0).reshape(6, 2)
    values[2, 1] = np.nan
    changed = values.copy()
    changed[4, 0] += 1e-9
    assert series_of(values).fingerprint() == series_of(values.copy()).fingerprint()
    assert series_of(values).fingerprint() != series_of(changed).fingerprint()


def test_gap_report_str_names_cells_with_gaps() -> None:
    text = str(GapReport(missing_per_cell={1: 0, 2: 3}, total_missing=3))
    assert text == "3 missing samples in 1 of 2 cells (cell 2: 3)"
