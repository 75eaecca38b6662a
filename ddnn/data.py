"""Demand series for the DDNN: the Milano loaders, a synthetic generator and the gap rule.

A :class:`DemandSeries` is a regular (T, C) grid of demand: one row per interval (the row's
timestamp is the UTC *start* of the interval), one column per cell (a Milano grid square, i.e.
one VNF). Everything here is NumPy and the standard library; nothing is downloaded.

Sources (see ``load_demand``):

- ``"synthetic"``: seeded, Milano-like internet demand (:func:`synthetic_demand`);
- tidy CSV (``.csv`` or ``.csv.gz``) with header ``cell_id,timestamp,<columns...>``, ISO-8601
  UTC timestamps (``2013-11-01T00:00:00Z``), one row per (cell, interval);
- the original Telecom Italia Dataverse daily files (tab-separated, no header, 8 fields:
  square_id, time_interval in epoch ms, countrycode, smsin, smsout, callin, callout, internet),
  and their comma-separated re-export with a ``GridID,TimeInterval,...`` header. The activity
  is summed over country codes per (square, interval).

Gap rule (the documented behaviour for missing data)
----------------------------------------------------
1. A missing sample is NaN, never zero. An empty field, a (cell, interval) absent from the
   file, and a (square, interval) whose country-code rows all lack the activity are missing.
   Rows that are present twice are summed (over their non-empty values).
2. Every loader builds the full regular grid from the first to the last timestamp over all
   cells, so missing samples are visible and counted (:meth:`DemandSeries.gaps`).
3. ``apply_gap_rule(series, "drop")`` (the default) leaves NaN in place and logs the gap
   report; the windowing code then drops every window whose inputs or target touch a NaN.
4. ``apply_gap_rule(series, "interpolate", max_fill=k)`` linearly interpolates each run of
   at most ``k`` missing samples that has valid neighbours on both sides. Longer runs and runs
   at the start or end of a series stay NaN (and are dropped by rule 3). It logs how many
   samples were filled.
5. Resampling sums blocks of consecutive samples; a block that touches a NaN becomes NaN.
"""

from __future__ import annotations

import array
import csv
import gzip
import hashlib
import itertools
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO, TypeVar

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SYNTHETIC = "synthetic"
ACTIVITIES = ("smsin", "smsout", "callin", "callout", "internet")
DATAVERSE_FIELDS = ("square_id", "time_interval", "countrycode", *ACTIVITIES)
GAP_RULES = ("drop", "interpolate")

_REEXPORT_HEADER = ("gridid", "timeinterval", "countrycode", *ACTIVITIES)
_TIDY_KEYS = ("cell_id", "timestamp")
_MINUTES_PER_DAY = 24 * 60
_MS_PER_MINUTE = 60_000
_MAX_GRID_SAMPLES = 200_000_000  # 1.6 GB of float64: a wrong interval, not real data
_SNIFF_ROWS = 200  # rows read to tell numeric columns from text ones
_IDS_SHOWN = 5  # cell ids quoted in a message

_K = TypeVar("_K")
_V = TypeVar("_V")


class DataError(ValueError):
    """Bad or unreadable demand data; the message names the file (and the line, if any)."""


@dataclass(frozen=True)
class GapReport:
    """How many samples are missing (NaN), per cell and in total."""

    missing_per_cell: dict[int, int]  # every cell of the series, 0 when complete
    total_missing: int

    def __str__(self) -> str:
        n_cells = len(self.missing_per_cell)
        if self.total_missing == 0:
            return f"no missing samples in {n_cells} cells"
        gappy = sorted(
            ((n, cell) for cell, n in self.missing_per_cell.items() if n > 0),
            key=lambda item: (-item[0], item[1]),
        )
        shown = ", ".join(f"cell {cell}: {n}" for n, cell in gappy[:_IDS_SHOWN])
        more = ", ..." if len(gappy) > _IDS_SHOWN else ""
        return (
            f"{self.total_missing} missing samples in {len(gappy)} of {n_cells} cells "
            f"({shown}{more})"
        )


@dataclass(frozen=True)
class DemandSeries:
    """Demand on a regular time grid: ``values[t, c]`` for cell ``cell_ids[c]``, NaN if missing."""

    values: FloatArray  # (T, C) float64
    cell_ids: tuple[int, ...]  # column order of values
    start: np.datetime64  # UTC start of the interval of row 0, minute precision
    interval_minutes: int
    source: str  # readable description: a path or "synthetic(seed=0, ...)"

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2:
            raise DataError(f"{self.source}: values must be 2-D (T, C), got shape {values.shape}")
        cell_ids = tuple(int(cell) for cell in self.cell_ids)
        if len(cell_ids) != values.shape[1]:
            raise DataError(
                f"{self.source}: {len(cell_ids)} cell ids for {values.shape[1]} value columns"
            )
        if len(set(cell_ids)) != len(cell_ids):
            raise DataError(f"{self.source}: duplicate cell ids {_duplicates(cell_ids)}")
        if isinstance(self.interval_minutes, bool) or int(self.interval_minutes) <= 0:
            raise DataError(f"{self.source}: interval_minutes must be a positive integer")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "cell_ids", cell_ids)
        object.__setattr__(self, "start", _to_minute(self.start, self.source))
        object.__setattr__(self, "interval_minutes", int(self.interval_minutes))

    def timestamps(self) -> npt.NDArray[np.datetime64]:
        """The UTC start of each row's interval, ``datetime64[m]``, shape (T,)."""
        steps = np.arange(self.values.shape[0], dtype=np.int64) * self.interval_minutes
        minutes: npt.NDArray[np.datetime64] = self.start + steps.astype("timedelta64[m]")
        return minutes

    def select(self, cells: Sequence[int] | None = None, top_k: int | None = None) -> DemandSeries:
        """Keep the given cells (in that order) or the ``top_k`` busiest (ordered by cell id)."""
        if cells is not None and top_k is not None:
            raise DataError(f"{self.source}: select takes either cells or top_k, not both")
        if cells is not None:
            return self._with_columns(self._columns_of(cells))
        if top_k is not None:
            return self._with_columns(self._busiest_columns(top_k))
        return self

    def gaps(self) -> GapReport:
        """Count the missing samples (NaN) of each cell."""
        missing = np.isnan(self.values).sum(axis=0)
        per_cell = {cell: int(n) for cell, n in zip(self.cell_ids, missing, strict=True)}
        return GapReport(missing_per_cell=per_cell, total_missing=int(missing.sum()))

    def fingerprint(self) -> str:
        """SHA-256 of the values (NaN and -0.0 made canonical), cell ids, start and interval."""
        canonical = np.where(np.isnan(self.values), np.nan, self.values + 0.0)
        digest = hashlib.sha256()
        header = (
            f"shape={self.values.shape};cells={','.join(map(str, self.cell_ids))};"
            f"start={self.start};interval={self.interval_minutes}\n"
        )
        digest.update(header.encode())
        digest.update(np.ascontiguousarray(canonical, dtype="<f8").tobytes())
        return digest.hexdigest()

    def resample(self, interval_minutes: int) -> DemandSeries:
        """Sum blocks of consecutive samples into a coarser interval (a multiple of this one).

        Blocks start at row 0; an incomplete trailing block is dropped (and logged). A block
        that contains a NaN becomes NaN.
        """
        factor = self._resample_factor(interval_minutes)
        if factor == 1:
            return self
        n_rows, n_cells = self.values.shape
        n_blocks = n_rows // factor
        if n_blocks == 0:
            raise DataError(
                f"{self.source}: {n_rows} rows are fewer than one {interval_minutes}-minute block"
            )
        if n_rows % factor:
            logger.warning(
                "%s: dropping %d trailing rows that do not fill a %d-minute block",
                self.source,
                n_rows % factor,
                interval_minutes,
            )
        blocks = self.values[: n_blocks * factor].reshape(n_blocks, factor, n_cells).sum(axis=1)
        return self._replaced(values=blocks, interval_minutes=interval_minutes)

    def _resample_factor(self, interval_minutes: int) -> int:
        if interval_minutes <= 0 or interval_minutes % self.interval_minutes:
            raise DataError(
                f"{self.source}: cannot resample {self.interval_minutes}-minute data to "
                f"{interval_minutes} minutes (need a positive multiple)"
            )
        return interval_minutes // self.interval_minutes

    def _columns_of(self, cells: Sequence[int]) -> list[int]:
        wanted = [int(cell) for cell in cells]
        if not wanted:
            raise DataError(f"{self.source}: select needs at least one cell")
        if len(set(wanted)) != len(wanted):
            raise DataError(f"{self.source}: cells listed twice: {_duplicates(wanted)}")
        index = {cell: column for column, cell in enumerate(self.cell_ids)}
        unknown = [cell for cell in wanted if cell not in index]
        if unknown:
            raise DataError(
                f"{self.source}: unknown cell ids {unknown}; available: "
                f"{_few(sorted(self.cell_ids))} ({len(self.cell_ids)} cells)"
            )
        return [index[cell] for cell in wanted]

    def _busiest_columns(self, top_k: int) -> list[int]:
        n_cells = len(self.cell_ids)
        if isinstance(top_k, bool) or not 1 <= top_k <= n_cells:
            raise DataError(f"{self.source}: top_k={top_k} must lie in 1..{n_cells} (cells)")
        totals = np.nansum(self.values, axis=0)
        ids = np.asarray(self.cell_ids, dtype=np.int64)
        chosen = np.lexsort((ids, -totals))[:top_k]  # busiest first, ties by cell id
        return [int(column) for column in chosen[np.argsort(ids[chosen])]]

    def _with_columns(self, columns: list[int]) -> DemandSeries:
        return self._replaced(
            values=self.values[:, columns],
            cell_ids=tuple(self.cell_ids[column] for column in columns),
        )

    def _replaced(
        self,
        values: FloatArray,
        cell_ids: tuple[int, ...] | None = None,
        interval_minutes: int | None = None,
    ) -> DemandSeries:
        return DemandSeries(
            values=values,
            cell_ids=self.cell_ids if cell_ids is None else cell_ids,
            start=self.start,
            interval_minutes=interval_minutes or self.interval_minutes,
            source=self.source,
        )


# ---------------------------------------------------------------------------------------------
# Small helpers


def _duplicates(items: Iterable[int]) -> list[int]:
    return sorted(item for item, count in Counter(items).items() if count > 1)


def _few(items: Sequence[object]) -> str:
    shown = ", ".join(str(item) for item in items[:_IDS_SHOWN])
    return shown + (", ..." if len(items) > _IDS_SHOWN else "")


def _to_minute(moment: object, source: str) -> np.datetime64:
    try:
        minute: np.datetime64 = np.datetime64(moment, "m")  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: start {moment!r} is not a timestamp: {exc}") from None
    return minute


def _epoch_minutes(moment: np.datetime64) -> int:
    return int(moment.astype("datetime64[m]").astype(np.int64))


def _cached(cache: dict[_K, _V], key: _K, parse: Callable[[_K], _V]) -> _V:
    value = cache.get(key)
    if value is None:
        value = cache[key] = parse(key)
    return value


def _describe_paths(paths: Sequence[Path]) -> str:
    if len(paths) <= 3:
        return ", ".join(str(path) for path in paths)
    return f"{paths[0]}, ..., {paths[-1]} ({len(paths)} files)"


# ---------------------------------------------------------------------------------------------
# Reading text files (plain or gzip)


def _open_text(path: Path) -> TextIO:
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        if compressed:
            return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot open: {exc}") from None


@contextmanager
def _reading(path: Path) -> Iterator[TextIO]:
    """Open a text file (gzip detected by its magic bytes); read errors become DataError."""
    stream = _open_text(path)
    try:
        with stream:
            yield stream
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def _first_line(path: Path) -> str:
    with _reading(path) as stream:
        return stream.readline().rstrip("\r\n")


# ---------------------------------------------------------------------------------------------
# Parsing fields (a ValueError here becomes "path:line: message")


def _parse_cell_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"cell id {text!r} is not an integer") from None


def _parse_iso_minute(text: str) -> int:
    """ISO-8601 timestamp with a time zone ('Z') -> minutes since the Unix epoch (UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not ISO-8601") from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone (expected UTC, e.g. ...T00:00:00Z)")
    if moment.second or moment.microsecond:
        raise ValueError(f"timestamp {text!r} is not on a whole minute")
    return int(moment.timestamp()) // 60


def _parse_epoch_ms_minute(text: str) -> int:
    """Epoch milliseconds (UTC) -> minutes since the Unix epoch."""
    try:
        milliseconds = int(text)
    except ValueError:
        raise ValueError(f"time interval {text!r} is not an integer (epoch ms)") from None
    if milliseconds % _MS_PER_MINUTE:
        raise ValueError(f"time interval {text!r} is not on a whole minute")
    return milliseconds // _MS_PER_MINUTE


def _parse_value(text: str, column: str) -> float:
    """A demand value; an empty field (or 'nan') is missing and becomes NaN, never 0."""
    if not text.strip():
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} value {text!r} is not a number") from None
    if math.isinf(value):
        raise ValueError(f"{column} value {text!r} is not finite")
    return value


# ---------------------------------------------------------------------------------------------
# Records: parsed rows before they are put on the grid


@dataclass(frozen=True)
class _Records:
    """One entry per row or per (cell, time): the sum and count of its non-missing values."""

    cells: IntArray
    minutes: IntArray  # minutes since the Unix epoch (UTC)
    sums: FloatArray
    counts: FloatArray

    @classmethod
    def from_values(cls, cells: IntArray, minutes: IntArray, values: FloatArray) -> _Records:
        valid = ~np.isnan(values)
        return cls(cells, minutes, np.where(valid, values, 0.0), valid.astype(np.float64))

    @classmethod
    def concatenate(cls, parts: Sequence[_Records]) -> _Records:
        return cls(
            np.concatenate([part.cells for part in parts]),
            np.concatenate([part.minutes for part in parts]),
            np.concatenate([part.sums for part in parts]),
            np.concatenate([part.counts for part in parts]),
        )

    def compacted(self) -> _Records:
        """Merge the entries of each (cell, time): sums and counts add up."""
        if self.cells.size == 0:
            return self
        order = np.lexsort((self.minutes, self.cells))
        cells, minutes = self.cells[order], self.minutes[order]
        changed = (np.diff(cells) != 0) | (np.diff(minutes) != 0)
        starts = np.flatnonzero(np.concatenate(([True], changed)))
        return _Records(
            cells[starts],
            minutes[starts],
            np.add.reduceat(self.sums[order], starts),
            np.add.reduceat(self.counts[order], starts),
        )


@dataclass(frozen=True)
class _Layout:
    """Where the fields of a row are and how to read its time."""

    n_fields: int
    value_column: int
    value_name: str
    parse_time: Callable[[str], int]


def _parse_rows(
    reader: Iterator[list[str]], line_of: Callable[[], int], path: Path, layout: _Layout
) -> _Records:
    """Parse (cell, time, value) from each non-blank row; errors name path:line."""
    cells, minutes, values = array.array("q"), array.array("q"), array.array("d")
    cell_cache: dict[str, int] = {}
    time_cache: dict[str, int] = {}
    for row in reader:
        if not row:
            continue
        try:
            if len(row) != layout.n_fields:
                raise ValueError(f"expected {layout.n_fields} fields, got {len(row)}")
            cells.append(_cached(cell_cache, row[0], _parse_cell_id))
            minutes.append(_cached(time_cache, row[1], layout.parse_time))
            values.append(_parse_value(row[layout.value_column], layout.value_name))
        except ValueError as exc:
            raise DataError(f"{path}:{line_of()}: {exc}") from None
    if not cells:
        raise DataError(f"{path}: no data rows")
    return _Records.from_values(
        np.frombuffer(cells, dtype=np.int64),
        np.frombuffer(minutes, dtype=np.int64),
        np.frombuffer(values, dtype=np.float64),
    )


# ---------------------------------------------------------------------------------------------
# From records to a regular grid


def _infer_interval(minutes: IntArray, path: Path) -> int:
    """The sampling interval: the GCD of the positive differences between timestamps."""
    unique = np.unique(minutes)
    if unique.size < 2:
        raise DataError(f"{path}: cannot infer the interval from a single timestamp")
    return int(np.gcd.reduce(np.diff(unique)))


def _check_on_grid(offsets: IntArray, interval: int, start: int, source: str) -> None:
    off_grid = np.flatnonzero(offsets % interval)
    if off_grid.size:
        example = np.datetime64(start + int(offsets[off_grid[0]]), "m")
        raise DataError(
            f"{source}: {off_grid.size} timestamps are not on the {interval}-minute grid that "
            f"starts at {np.datetime64(start, 'm')}Z (first: {example}Z)"
        )


def _check_grid_size(n_steps: int, n_cells: int, source: str) -> None:
    if n_steps * n_cells > _MAX_GRID_SAMPLES:
        raise DataError(
            f"{source}: the grid would hold {n_steps} steps x {n_cells} cells; "
            "are the timestamps or the interval wrong?"
        )


def _records_to_series(records: _Records, interval: int, source: str) -> DemandSeries:
    """Put records on the full regular grid from the first to the last timestamp."""
    start = int(records.minutes.min())
    offsets = records.minutes - start
    _check_on_grid(offsets, interval, start, source)
    rows = offsets // interval
    n_steps = int(rows.max()) + 1
    cell_ids, columns = np.unique(records.cells, return_inverse=True)
    n_cells = int(cell_ids.size)
    _check_grid_size(n_steps, n_cells, source)
    flat = rows * n_cells + columns.ravel()
    sums = np.bincount(flat, weights=records.sums, minlength=n_steps * n_cells)
    counts = np.bincount(flat, weights=records.counts, minlength=n_steps * n_cells)
    values = np.where(counts > 0, sums, np.nan).reshape(n_steps, n_cells)
    return DemandSeries(
        values=values,
        cell_ids=tuple(int(cell) for cell in cell_ids),
        start=np.datetime64(start, "m"),
        interval_minutes=interval,
        source=source,
    )


def _log_loaded(series: DemandSeries) -> None:
    logger.info(
        "loaded %s: %d steps x %d cells at %d min from %sZ; %s",
        series.source,
        series.values.shape[0],
        series.values.shape[1],
        series.interval_minutes,
        series.start,
        series.gaps(),
    )


# ---------------------------------------------------------------------------------------------
# Tidy CSV


def load_tidy_csv(path: str | Path, activity: str = "internet") -> DemandSeries:
    """Load a tidy ``cell_id,timestamp,<columns...>`` CSV (optionally gzip) into a grid.

    The interval is the GCD of the timestamp differences; absent rows and empty fields are
    NaN; duplicate (cell, timestamp) rows are summed; columns other than ``activity`` are
    ignored.
    """
    path = Path(path)
    with _reading(path) as stream:
        reader = csv.reader(stream)
        header = _read_tidy_header(reader, path)
        layout = _Layout(
            n_fields=len(header),
            value_column=_tidy_activity_column(header, activity, reader, path),
            value_name=activity,
            parse_time=_parse_iso_minute,
        )
        records = _parse_rows(reader, lambda: reader.line_num, path, layout)
    interval = _infer_interval(records.minutes, path)
    series = _records_to_series(records, interval, str(path))
    _log_loaded(series)
    return series


def _read_tidy_header(reader: Iterator[list[str]], path: Path) -> list[str]:
    header = [name.strip() for name in next(reader, [])]
    if not header:
        raise DataError(f"{path}: empty file (expected a 'cell_id,timestamp,...' header)")
    if tuple(header[:2]) != _TIDY_KEYS or len(header) < 3:
        raise DataError(
            f"{path}:1: header must be 'cell_id,timestamp,<columns...>', got {','.join(header)!r}"
        )
    return header


def _tidy_activity_column(
    header: list[str], activity: str, reader: Iterator[list[str]], path: Path
) -> int:
    if activity in header[2:]:
        return header.index(activity, 2)
    numeric = _numeric_columns(header, itertools.islice(reader, _SNIFF_ROWS))
    raise DataError(
        f"{path}: no activity column {activity!r}; available numeric columns: "
        f"{', '.join(numeric) or 'none'}"
    )


def _numeric_columns(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """Data columns whose non-empty values (in the sampled rows) all parse as numbers."""
    numeric = dict.fromkeys(range(2, len(header)), True)
    for row in rows:
        for column in numeric:
            if column < len(row) and row[column].strip() and not _is_number(row[column]):
                numeric[column] = False
    return [header[column] for column, is_numeric in numeric.items() if is_numeric]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Dataverse daily files


def load_dataverse(
    paths: Sequence[str | Path], activity: str = "internet", interval_minutes: int = 10
) -> DemandSeries:
    """Load Telecom Italia daily files (or their GridID re-export) onto one regular grid.

    The activity is summed over country codes per (square, interval); a (square, interval)
    whose rows all lack the activity, or that has no row, is NaN.
    """
    files = [Path(path) for path in paths]
    if not files:
        raise DataError("load_dataverse: no files given")
    source = _describe_paths(files)
    if activity not in ACTIVITIES:
        raise DataError(
            f"{source}: unknown activity {activity!r}; choose one of {', '.join(ACTIVITIES)}"
        )
    if isinstance(interval_minutes, bool) or interval_minutes <= 0:
        raise DataError(f"{source}: interval_minutes must be positive, got {interval_minutes}")
    parts = [_read_dataverse_file(path, activity).compacted() for path in files]
    series = _records_to_series(_Records.concatenate(parts), interval_minutes, source)
    _log_loaded(series)
    return series


def _read_dataverse_file(path: Path, activity: str) -> _Records:
    layout = _Layout(
        n_fields=len(DATAVERSE_FIELDS),
        value_column=DATAVERSE_FIELDS.index(activity),
        value_name=activity,
        parse_time=_parse_epoch_ms_minute,
    )
    with _reading(path) as stream:
        first = stream.readline()
        is_reexport = _is_reexport_header(first, path)
        lines = itertools.chain([first], stream)
        reader = csv.reader(lines, delimiter="," if is_reexport else "\t")
        if is_reexport:
            next(reader)
        return _parse_rows(reader, lambda: reader.line_num, path, layout)


def _is_reexport_header(first_line: str, path: Path) -> bool:
    """True for the comma-separated ``GridID,TimeInterval,...`` re-export (header checked)."""
    if not first_line.lower().startswith("gridid,"):
        return False
    names = tuple(name.strip().lower() for name in first_line.strip().split(","))
    if names != _REEXPORT_HEADER:
        raise DataError(
            f"{path}:1: unexpected header {first_line.strip()!r}; expected "
            f"'GridID,TimeInterval,countrycode,{','.join(ACTIVITIES)}'"
        )
    return True


# ---------------------------------------------------------------------------------------------
# One entry point for every source


def load_demand(source: str | Path, activity: str = "internet") -> DemandSeries:
    """Load ``"synthetic"``, a tidy CSV, a Dataverse file, or a directory of either."""
    if isinstance(source, str) and source == SYNTHETIC:
        if activity != "internet":
            logger.warning("synthetic demand is internet-like; ignoring activity=%r", activity)
        return synthetic_demand()
    path = Path(source)
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    if path.is_dir():
        return _load_directory(path, activity)
    if _sniff_format(path) == "tidy":
        return load_tidy_csv(path, activity)
    return load_dataverse([path], activity)


def _sniff_format(path: Path) -> str:
    """'tidy' or 'dataverse', from the first line of the file."""
    first = _first_line(path)
    if first.startswith("cell_id,"):
        return "tidy"
    if first.lower().startswith("gridid,") or len(first.split("\t")) == len(DATAVERSE_FIELDS):
        return "dataverse"
    raise DataError(
        f"{path}:1: unknown format: expected a 'cell_id,timestamp,...' header, a 'GridID,...' "
        f"header or {len(DATAVERSE_FIELDS)} tab-separated fields, got {first[:80]!r}"
    )


def _files_ending(directory: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(
        path
        for path in directory.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.name.endswith(suffixes)
    )


def _load_directory(directory: Path, activity: str) -> DemandSeries:
    daily_files = _files_ending(directory, (".txt", ".txt.gz"))
    if daily_files:
        return load_dataverse(daily_files, activity)
    tables = _files_ending(directory, (".csv", ".csv.gz"))
    if not tables:
        raise DataError(f"{directory}: no *.txt, *.txt.gz, *.csv or *.csv.gz files")
    formats = {path: _sniff_format(path) for path in tables}
    if set(formats.values()) == {"dataverse"}:
        return load_dataverse(tables, activity)
    if set(formats.values()) == {"tidy"}:
        return _combine_by_cell([load_tidy_csv(path, activity) for path in tables], str(directory))
    reexports = [path.name for path, kind in formats.items() if kind == "dataverse"]
    raise DataError(f"{directory}: mixes tidy CSV files with GridID re-exports ({_few(reexports)})")


def _combine_by_cell(parts: Sequence[DemandSeries], source: str) -> DemandSeries:
    """Put series of disjoint cells side by side on one grid (ordered by cell id)."""
    _check_same_interval(parts, source)
    _check_disjoint_cells(parts, source)
    interval = parts[0].interval_minutes
    starts = [_epoch_minutes(part.start) for part in parts]
    ends = [
        start + (part.values.shape[0] - 1) * interval
        for start, part in zip(starts, parts, strict=True)
    ]
    first = min(starts)
    _check_on_grid(np.asarray(starts, dtype=np.int64) - first, interval, first, source)
    cell_ids = sorted(cell for part in parts for cell in part.cell_ids)
    column_of = {cell: column for column, cell in enumerate(cell_ids)}
    values = np.full(((max(ends) - first) // interval + 1, len(cell_ids)), np.nan)
    for start, part in zip(starts, parts, strict=True):
        row = (start - first) // interval
        columns = [column_of[cell] for cell in part.cell_ids]
        values[row : row + part.values.shape[0], columns] = part.values
    return DemandSeries(values, tuple(cell_ids), np.datetime64(first, "m"), interval, source)


def _check_same_interval(parts: Sequence[DemandSeries], source: str) -> None:
    intervals = {part.source: part.interval_minutes for part in parts}
    if len(set(intervals.values())) > 1:
        listing = ", ".join(f"{name}: {minutes} min" for name, minutes in intervals.items())
        raise DataError(f"{source}: files have different intervals ({listing})")


def _check_disjoint_cells(parts: Sequence[DemandSeries], source: str) -> None:
    owner: dict[int, str] = {}
    for part in parts:
        for cell in part.cell_ids:
            if cell in owner:
                raise DataError(
                    f"{source}: cell {cell} appears in both {owner[cell]} and {part.source}"
                )
            owner[cell] = part.source


# ---------------------------------------------------------------------------------------------
# Synthetic demand


def synthetic_demand(
    n_cells: int = 16,
    n_days: int = 28,
    interval_minutes: int = 10,
    seed: int = 0,
    start: str = "2013-11-04T00:00",
) -> DemandSeries:
    """Seeded, Milano-like internet demand: positive, no NaN, cell ids 1..n_cells.

    Per cell: a lognormal scale, a daily cycle (low at night, peaks late morning and evening,
    phase shifted by up to an hour), weekends 20-30 % lower, a slow AR(1) drift, multiplicative
    noise and a few bursts of 30 min to 3 h.
    """
    source = (
        f"synthetic(seed={seed}, n_cells={n_cells}, n_days={n_days}, "
        f"interval_minutes={interval_minutes}, start={start})"
    )
    _check_synthetic_arguments(n_cells, n_days, interval_minutes, source)
    origin = _to_minute(start.removesuffix("Z"), source)
    n_steps = n_days * (_MINUTES_PER_DAY // interval_minutes)
    minutes = _epoch_minutes(origin) + np.arange(n_steps, dtype=np.int64) * interval_minutes
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(mean=math.log(100.0), sigma=0.8, size=n_cells)
    daily = _daily_cycle(minutes, phase_hours=rng.uniform(-1.0, 1.0, size=n_cells))
    weekly = _weekly_cycle(minutes, weekend_factor=rng.uniform(0.70, 0.80, size=n_cells))
    drift = np.exp(_slow_drift(rng, n_steps, n_cells, interval_minutes))
    noise = np.exp(rng.normal(0.0, 0.08, size=(n_steps, n_cells)))
    bursts = _bursts(rng, n_steps, n_cells, interval_minutes, n_days)
    values = scale * daily * weekly * drift * noise * bursts
    return DemandSeries(values, tuple(range(1, n_cells + 1)), origin, interval_minutes, source)


def _check_synthetic_arguments(n_cells: int, n_days: int, interval: int, source: str) -> None:
    if n_cells < 1 or n_days < 1:
        raise DataError(f"{source}: n_cells and n_days must be at least 1")
    if interval <= 0 or _MINUTES_PER_DAY % interval:
        raise DataError(f"{source}: interval_minutes must divide a day ({_MINUTES_PER_DAY} min)")


def _bump(hours: FloatArray, centre: float, width: float) -> FloatArray:
    """A Gaussian bump on the 24-hour circle."""
    distance = (hours - centre + 12.0) % 24.0 - 12.0
    result: FloatArray = np.exp(-0.5 * (distance / width) ** 2)
    return result


def _daily_cycle(minutes: IntArray, phase_hours: FloatArray) -> FloatArray:
    """(T, C) daily profile in (0.2, 1]: night trough, late-morning and evening peaks."""
    hours = (minutes % _MINUTES_PER_DAY) / 60.0
    shifted = hours[:, None] - phase_hours[None, :]
    return (
        0.22
        + 0.55 * _bump(shifted, 11.5, 2.5)
        + 0.30 * _bump(shifted, 15.5, 3.0)
        + 0.70 * _bump(shifted, 20.5, 2.0)
    )


def _weekly_cycle(minutes: IntArray, weekend_factor: FloatArray) -> FloatArray:
    """(T, C): 1 on weekdays, the cell's weekend factor on Saturdays and Sundays (UTC)."""
    weekday = (minutes // _MINUTES_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weekend = weekday >= 5
    return np.where(weekend[:, None], weekend_factor[None, :], 1.0)


def _slow_drift(rng: np.random.Generator, n_steps: int, n_cells: int, interval: int) -> FloatArray:
    """(T, C) AR(1) log-level with a 12-hour time constant and a stationary std of 0.15."""
    coefficient = math.exp(-interval / (12 * 60))
    sigma = 0.15
    shocks = rng.normal(0.0, sigma * math.sqrt(1.0 - coefficient**2), size=(n_steps, n_cells))
    drift = np.empty((n_steps, n_cells))
    drift[0] = rng.normal(0.0, sigma, size=n_cells)
    for step in range(1, n_steps):
        drift[step] = coefficient * drift[step - 1] + shocks[step]
    return drift


def _bursts(
    rng: np.random.Generator, n_steps: int, n_cells: int, interval: int, n_days: int
) -> FloatArray:
    """(T, C) multiplicative bursts: a few per cell, 30 min - 3 h long, 1.5x - 3x demand."""
    factor = np.ones((n_steps, n_cells))
    for cell in range(n_cells):
        for _ in range(2 + int(rng.poisson(1.5 * n_days / 28))):
            length = min(n_steps, max(1, round(rng.uniform(30.0, 180.0) / interval)))
            begin = int(rng.integers(0, n_steps - length + 1))
            factor[begin : begin + length, cell] *= 1.0 + rng.uniform(0.5, 2.0)
    return factor


# ---------------------------------------------------------------------------------------------
# The gap rule


def apply_gap_rule(series: DemandSeries, rule: str = "drop", max_fill: int = 0) -> DemandSeries:
    """Apply the documented gap rule ("drop" or "interpolate"; see the module docstring)."""
    if rule == "drop":
        logger.info(
            "gap rule 'drop' on %s: %s; windows touching a gap will be dropped",
            series.source,
            series.gaps(),
        )
        return series
    if rule == "interpolate":
        return _interpolate_short_gaps(series, max_fill)
    raise DataError(f"{series.source}: unknown gap rule {rule!r}; choose one of {GAP_RULES}")


def _interpolate_short_gaps(series: DemandSeries, max_fill: int) -> DemandSeries:
    if max_fill < 0:
        raise DataError(f"{series.source}: max_fill must be >= 0, got {max_fill}")
    values = series.values.copy()
    missing_before = int(np.isnan(values).sum())
    filled = sum(_fill_short_runs(values[:, column], max_fill) for column in range(values.shape[1]))
    logger.info(
        "gap rule 'interpolate' (max_fill=%d) on %s: filled %d of %d missing samples; "
        "%d remain and windows touching them will be dropped",
        max_fill,
        series.source,
        filled,
        missing_before,
        missing_before - filled,
    )
    return DemandSeries(
        values, series.cell_ids, series.start, series.interval_minutes, series.source
    )


def _nan_runs(missing: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, stop) of each maximal run of True."""
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True)
    )


def _fill_short_runs(column: FloatArray, max_fill: int) -> int:
    """Linearly fill, in place, NaN runs of at most max_fill with valid neighbours on both sides."""
    filled = 0
    for first, stop in _nan_runs(np.isnan(column)):
        if stop - first > max_fill or first == 0 or stop == column.size:
            continue
        known = np.array([first - 1, stop])
        column[first:stop] = np.interp(np.arange(first, stop), known, column[known])
        filled += stop - first
    return filled
