"""The Telecom Italia Dataverse daily files and their comma-separated re-export.

The originals are tab-separated with no header and 8 fields (square_id, time_interval in epoch
ms, countrycode, smsin, smsout, callin, callout, internet), one row per (square, interval,
country code); the re-export has the same fields under a ``GridID,TimeInterval,...`` header.
The activity is summed over country codes per (square, interval). A month of data spans many
files, so each file is compacted before they are combined on one grid.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from pathlib import Path

from ddnn.data.records import (
    _Layout,
    _log_loaded,
    _parse_rows,
    _reading,
    _Records,
    _records_to_series,
)
from ddnn.data.series import DataError, DemandSeries

ACTIVITIES = ("smsin", "smsout", "callin", "callout", "internet")
DATAVERSE_FIELDS = ("square_id", "time_interval", "countrycode", *ACTIVITIES)

_REEXPORT_HEADER = ("gridid", "timeinterval", "countrycode", *ACTIVITIES)
_MS_PER_MINUTE = 60_000


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


def _parse_epoch_ms_minute(text: str) -> int:
    """Epoch milliseconds (UTC) -> minutes since the Unix epoch."""
    try:
        milliseconds = int(text)
    except ValueError:
        raise ValueError(f"time interval {text!r} is not an integer (epoch ms)") from None
    if milliseconds % _MS_PER_MINUTE:
        raise ValueError(f"time interval {text!r} is not on a whole minute")
    return milliseconds // _MS_PER_MINUTE


def _describe_paths(paths: Sequence[Path]) -> str:
    if len(paths) <= 3:
        return ", ".join(str(path) for path in paths)
    return f"{paths[0]}, ..., {paths[-1]} ({len(paths)} files)"
