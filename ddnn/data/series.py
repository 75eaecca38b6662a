"""The demand series itself: a regular (T, C) grid of demand and the helpers every module shares.

A :class:`DemandSeries` has one row per interval (the row's timestamp is the UTC *start* of
the interval) and one column per cell (a Milano grid square, i.e. one VNF); a missing sample
is NaN, never zero. Loaders build it, the gap rule and the windowing code consume it, so it
lives here apart from any file format.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_IDS_SHOWN = 5  # cell ids quoted in a message


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

    def select(
        self,
        cells: Sequence[int] | None = None,
        top_k: int | None = None,
        until: np.datetime64 | None = None,
    ) -> DemandSeries:
        """Keep the given cells (in that order) or the ``top_k`` busiest (ordered by cell id).

        Busiest means the largest total before ``until`` (the end of the training period, so
        that the choice of cells never looks at validation or test data); None: every row.
        """
        if cells is not None and top_k is not None:
            raise DataError(f"{self.source}: select takes either cells or top_k, not both")
        if cells is not None:
            return self._with_columns(self._columns_of(cells))
        if top_k is not None:
            n_cells = len(self.cell_ids)
            if isinstance(top_k, bool) or not 1 <= top_k <= n_cells:
                raise DataError(f"{self.source}: top_k={top_k} must lie in 1..{n_cells} (cells)")
            return self.select(cells=sorted(self.ranked(until)[:top_k]))
        return self

    def ranked(self, until: np.datetime64 | None = None) -> tuple[int, ...]:
        """Cell ids, busiest first (total over the rows before ``until``), ties by cell id."""
        rows = self.values.shape[0] if until is None else self.row_of(until)
        totals = np.nansum(self.values[:rows], axis=0)
        ids = np.asarray(self.cell_ids, dtype=np.int64)
        return tuple(int(cell) for cell in ids[np.lexsort((ids, -totals))])

    def row_of(self, moment: np.datetime64) -> int:
        """The first row whose interval starts at or after ``moment`` (clipped to 0..T)."""
        minutes = (_to_minute(moment, self.source) - self.start).astype("timedelta64[m]")
        rows = -(-int(minutes.astype(np.int64)) // self.interval_minutes)  # ceiling division
        return int(np.clip(rows, 0, self.values.shape[0]))

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
# Small helpers, shared by the loaders (messages quote a few ids; times are epoch minutes)


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
