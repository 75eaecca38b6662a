"""Tests of ddnn.data: tidy and Dataverse loaders, selection, synthetic demand, the gap rule."""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ddnn.data import (
    DataError,
    DemandSeries,
    GapReport,
    apply_gap_rule,
    load_dataverse,
    load_demand,
    load_tidy_csv,
    synthetic_demand,
)

pytestmark = pytest.mark.unit

MILANO = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "milano"
needs_milano = pytest.mark.skipif(
    not MILANO.is_dir(), reason=f"real Milano data not found at {MILANO.resolve()}"
)

DAY_MS = 86_400_000
SLOT_MS = 600_000
NOV_1_LOCAL_MS = 1_383_260_400_000  # 2013-10-31T23:00Z, start of the 2013-11-01 daily file
COUNTRY_CODES = (0, 39, 46)


# ---------------------------------------------------------------------------------------------
# Helpers


def write_text(path: Path, lines: Sequence[str]) -> Path:
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as stream:
            stream.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def series_of(values: npt.ArrayLike, cell_ids: Sequence[int] = ()) -> DemandSeries:
    array = np.asarray(values, dtype=np.float64)
    ids = tuple(cell_ids) or tuple(range(1, array.shape[1] + 1))
    return DemandSeries(array, ids, np.datetime64("2013-11-04T00:00", "m"), 10, "test")


def small_tidy_lines() -> list[str]:
    """Cells 7 and 3 over 4 slots of 10 min; cell 3 lacks 00:10, cell 7 has an empty field."""
    return [
        "cell_id,timestamp,internet,source",
        "7,2013-11-01T00:00:00Z,1.5,a",
        "3,2013-11-01T00:00:00Z,10.0,a",
        "7,2013-11-01T00:10:00Z,,a",
        "3,2013-11-01T00:20:00Z,30.0,a",
        "7,2013-11-01T00:20:00Z,3.5,a",
        "3,2013-11-01T00:30:00Z,40.0,a",
        "7,2013-11-01T00:30:00Z,4.5,a",
    ]


def dataverse_value(square: int, slot: int, code: int, activity: int) -> float:
    """A distinct, exactly representable value per (square, slot, country, activity)."""
    return square * 1000 + slot + code / 64 + activity / 4


def dataverse_day_lines(day: int, squares: Sequence[int], sep: str = "\t") -> list[str]:
    """All 144 slots of one day for the squares, one row per country code."""
    lines = []
    for slot in range(144):
        epoch_ms = NOV_1_LOCAL_MS + day * DAY_MS + slot * SLOT_MS
        for square in squares:
            for code in COUNTRY_CODES:
                values = [str(dataverse_value(square, slot, code, a)) for a in range(5)]
                lines.append(sep.join([str(square), str(epoch_ms), str(code), *values]))
    return lines


def expected_dataverse_sum(square: int, slot: int, activity: int) -> float:
    return sum(dataverse_value(square, slot, code, activity) for code in COUNTRY_CODES)


def lag_autocorrelation(values: np.ndarray, lag: int) -> float:
    centred = values - values.mean()
    return float(np.sum(centred[lag:] * centred[:-lag]) / np.sum(centred * centred))


# ---------------------------------------------------------------------------------------------
# Tidy CSV


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


# ---------------------------------------------------------------------------------------------
# Dataverse daily files


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


# ---------------------------------------------------------------------------------------------
# load_demand


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


# ---------------------------------------------------------------------------------------------
# DemandSeries


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


# ---------------------------------------------------------------------------------------------
# The gap rule


def test_apply_gap_rule_interpolate_fills_short_gap_only() -> None:
    column = [1.0, np.nan, 3.0, 4.0, np.nan, np.nan, np.nan, 8.0, np.nan]
    filled = apply_gap_rule(series_of([[v] for v in column]), "interpolate", max_fill=2)
    result = filled.values[:, 0]
    assert result[1] == pytest.approx(2.0)
    assert np.isnan(result[4:7]).all()  # a run of 3 > max_fill stays missing
    assert np.isnan(result[8])  # an edge run has no right neighbour
    assert filled.gaps().total_missing == 4


def test_apply_gap_rule_drop_leaves_nan() -> None:
    series = series_of([[1.0], [np.nan], [3.0]])
    kept = apply_gap_rule(series, "drop")
    assert np.isnan(kept.values[1, 0])
    assert kept.fingerprint() == series.fingerprint()


def test_apply_gap_rule_unknown_rule_raises() -> None:
    with pytest.raises(DataError, match="zero"):
        apply_gap_rule(series_of([[1.0]]), "zero")


# ---------------------------------------------------------------------------------------------
# Synthetic demand


def test_synthetic_demand_is_deterministic_for_a_seed() -> None:
    assert synthetic_demand(seed=3).fingerprint() == synthetic_demand(seed=3).fingerprint()
    assert synthetic_demand(seed=3).fingerprint() != synthetic_demand(seed=4).fingerprint()


def test_synthetic_demand_has_shape_ids_and_positive_values() -> None:
    series = synthetic_demand(n_cells=4, n_days=3, interval_minutes=30)
    assert series.values.shape == (3 * 48, 4)
    assert series.cell_ids == (1, 2, 3, 4)
    assert series.interval_minutes == 30
    assert np.isfinite(series.values).all()
    assert (series.values > 0).all()


def test_synthetic_demand_repeats_daily() -> None:
    series = synthetic_demand(n_cells=4, n_days=14)
    for column in series.values.T:
        assert lag_autocorrelation(column, 144) > lag_autocorrelation(column, 72) + 0.5


def test_synthetic_demand_weekends_are_lower() -> None:
    series = synthetic_demand(n_cells=8, n_days=14)  # starts on Monday 2013-11-04
    days = series.values.reshape(14, 144, 8).sum(axis=1)
    weekday_mean = days[[0, 1, 2, 3, 4, 7, 8, 9, 10, 11]].mean()
    weekend_mean = days[[5, 6, 12, 13]].mean()
    assert 0.6 < weekend_mean / weekday_mean < 0.9


# ---------------------------------------------------------------------------------------------
# Real Milano data


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
