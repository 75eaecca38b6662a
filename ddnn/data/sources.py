"""One entry point for every source: pick the loader from the name, the file, or the directory.

The CLI and the settings take one ``--data`` value, so :func:`load_demand` tells the sources
apart: ``"synthetic"`` by name, a file by its first line (a tidy header, a ``GridID`` header or
tab-separated Dataverse fields), a directory by the files in it. Tidy files in one directory
hold disjoint cells (one file per block of cells) and are put side by side on one grid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ddnn.data.dataverse import DATAVERSE_FIELDS, load_dataverse
from ddnn.data.records import _check_on_grid, _first_line
from ddnn.data.series import DataError, DemandSeries, _epoch_minutes, _few
from ddnn.data.synthetic import SYNTHETIC, synthetic_demand
from ddnn.data.tidy import load_tidy_csv

logger = logging.getLogger(__name__)


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
