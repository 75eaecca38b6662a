"""What the file loaders share: reading text, parsing rows into records, putting them on a grid.

Every format (tidy CSV, Dataverse daily files and their re-export) goes the same way: open the
file (plain or gzip), parse (cell, time, value) from each row into :class:`_Records` (sum and
count of the non-missing values), then lay the records on the full regular grid from the first
to the last timestamp, so that absent rows become visible NaN. A format module only supplies
its :class:`_Layout` (field count, value column, time parser) and its header checks.
"""

from __future__ import annotations

import array
import csv
import gzip
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

import numpy as np

from ddnn.data.series import DataError, DemandSeries, FloatArray, IntArray

logger = logging.getLogger(__name__)

_MAX_GRID_SAMPLES = 200_000_000  # 1.6 GB of float64: a wrong interval, not real data

_K = TypeVar("_K")
_V = TypeVar("_V")


def _cached(cache: dict[_K, _V], key: _K, parse: Callable[[_K], _V]) -> _V:
    value = cache.get(key)
    if value is None:
        value = cache[key] = parse(key)
    return value


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
