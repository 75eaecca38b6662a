"""Small files and series for the tests of ddnn.data: tidy lines, Dataverse days, the real data.

The Dataverse helpers give every (square, slot, country, activity) a distinct, exactly
representable value, so a test can tell which rows were summed into which sample.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ddnn.data import DemandSeries

MILANO = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "milano"
needs_milano = pytest.mark.skipif(
    not MILANO.is_dir(), reason=f"real Milano data not found at {MILANO.resolve()}"
)

DAY_MS = 86_400_000
SLOT_MS = 600_000
NOV_1_LOCAL_MS = 1_383_260_400_000  # 2013-10-31T23:00Z, start of the 2013-11-01 daily file
COUNTRY_CODES = (0, 39, 46)


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
