"""The gap rule: what happens to missing samples between loading and windowing.

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

Rules 1 and 2 are kept by the loaders (:mod:`ddnn.data.records`), rule 5 by
:meth:`DemandSeries.resample`; rules 3 and 4 live here.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from ddnn.data.series import DataError, DemandSeries, FloatArray

logger = logging.getLogger(__name__)

GAP_RULES = ("drop", "interpolate")


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
