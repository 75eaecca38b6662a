"""Tidy CSV: ``cell_id,timestamp,<columns...>``, one row per (cell, interval), plain or gzip.

Timestamps are ISO-8601 with a time zone (``2013-11-01T00:00:00Z``); the interval is not
declared, so it is inferred from the data. The activity is one named column; the others
(numeric or text) are ignored, and a missing activity is reported with the numeric columns
the file does offer.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from ddnn.data.records import (
    _infer_interval,
    _Layout,
    _log_loaded,
    _parse_rows,
    _reading,
    _records_to_series,
)
from ddnn.data.series import DataError, DemandSeries

_TIDY_KEYS = ("cell_id", "timestamp")
_SNIFF_ROWS = 200  # rows read to tell numeric columns from text ones


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
