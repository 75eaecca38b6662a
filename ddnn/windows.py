"""From a demand series to model samples: per-VNF scaling, splits by target, N x K windows.

Rules (documented in the README):
- a window belongs to the split of the time it predicts (its target); its N inputs may reach
  back into earlier splits, never forward. The timeline is cut into train / validation / test
  periods either by fractions of the rows (default 70/15/15) or by a `Fold` (rolling origin:
  validation and test periods given by dates, training = every target before validation);
- the per-VNF min-max scaler is fitted on the training period only (NaN ignored);
- a window whose inputs or target touch a missing sample (NaN) is dropped, never zero-filled;
- with more cells than K (C = G x K), the G groups of K consecutive cells share one model:
  their windows are stacked (weight sharing); the first group is the one the model serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Self

import numpy as np

from ddnn.data import DemandSeries

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


class WindowError(ValueError):
    """The series cannot be cut into windows as asked (too short, wrong K, bad fractions)."""


@dataclass(frozen=True)
class MinMaxScaler:
    """Per-VNF min-max scaling to [0, 1] (on the training range), invertible."""

    minimum: np.ndarray  # (K,)
    maximum: np.ndarray  # (K,)

    @classmethod
    def fit(cls, values: np.ndarray) -> MinMaxScaler:
        """Fit on (T, K) values, ignoring NaN; a constant VNF gets a unit range."""
        if values.ndim != 2 or values.shape[0] == 0:
            raise WindowError(
                f"scaler: expected (T, K) values with T > 0, got shape {values.shape}"
            )
        if np.isnan(values).all(axis=0).any():
            raise WindowError("scaler: a VNF has no valid sample in the training split")
        low = np.nanmin(values, axis=0)
        high = np.nanmax(values, axis=0)
        high = np.where(high > low, high, low + 1.0)
        return cls(minimum=low.astype(np.float64), maximum=high.astype(np.float64))

    @property
    def n_vnfs(self) -> int:
        return int(self.minimum.shape[0])

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Data units -> [0, 1] on the training range; the last axis is the VNF axis."""
        self._check_last_axis(values)
        return np.asarray((values - self.minimum) / (self.maximum - self.minimum))

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """[0, 1] -> data units (allocations map back the same way as demand)."""
        self._check_last_axis(values)
        return np.asarray(values * (self.maximum - self.minimum) + self.minimum)

    def subset(self, columns: slice) -> MinMaxScaler:
        return MinMaxScaler(minimum=self.minimum[columns], maximum=self.maximum[columns])

    def to_dict(self) -> dict[str, Any]:
        return {"minimum": self.minimum.tolist(), "maximum": self.maximum.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        low = np.asarray(data["minimum"], dtype=np.float64)
        high = np.asarray(data["maximum"], dtype=np.float64)
        if low.shape != high.shape or low.ndim != 1 or np.any(high <= low):
            raise WindowError("scaler: minimum/maximum must be equal-length vectors with max > min")
        return cls(minimum=low, maximum=high)

    def _check_last_axis(self, values: np.ndarray) -> None:
        if values.shape[-1] != self.n_vnfs:
            raise WindowError(
                f"scaler: last axis has {values.shape[-1]} VNFs, the scaler was fitted on {self.n_vnfs}"
            )


@dataclass(frozen=True)
class WindowSet:
    """Samples of one split: inputs (M, N, K) and next-slot targets (M, K), scaled, float32."""

    inputs: np.ndarray
    targets: np.ndarray
    target_index: np.ndarray  # (M,) row of the target in the series (for plots)
    group: np.ndarray  # (M,) which group of K cells the sample comes from

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def of_group(self, group: int) -> WindowSet:
        keep = self.group == group
        return WindowSet(
            self.inputs[keep], self.targets[keep], self.target_index[keep], self.group[keep]
        )


@dataclass(frozen=True)
class SplitFractions:
    train: float = 0.70
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        parts = (self.train, self.val, self.test)
        if min(parts) <= 0 or abs(sum(parts) - 1.0) > 1e-6:
            raise WindowError(f"split fractions must be > 0 and sum to 1, got {parts}")


@dataclass(frozen=True)
class Fold:
    """One rolling-origin fold: targets in [val_start, test_start) validate, targets in
    [test_start, test_end) test, and every earlier target trains. Times are UTC."""

    name: str
    val_start: np.datetime64
    test_start: np.datetime64
    test_end: np.datetime64  # exclusive

    def __post_init__(self) -> None:
        times = [_minute(t) for t in (self.val_start, self.test_start, self.test_end)]
        if not times[0] < times[1] < times[2]:
            raise WindowError(f"fold {self.name}: need val_start < test_start < test_end")
        object.__setattr__(self, "val_start", times[0])
        object.__setattr__(self, "test_start", times[1])
        object.__setattr__(self, "test_end", times[2])

    def bounds(self, series: DemandSeries) -> list[tuple[int, int]]:
        """[start, stop) target rows of the train, validation and test periods."""
        val, test, end = (
            series.row_of(t) for t in (self.val_start, self.test_start, self.test_end)
        )
        return [(0, val), (val, test), (test, end)]

    def describe(self) -> dict[str, str]:
        return {
            "name": self.name,
            "val_start": f"{self.val_start}Z",
            "test_start": f"{self.test_start}Z",
            "test_end": f"{self.test_end}Z",
        }


Split = SplitFractions | Fold


@dataclass(frozen=True)
class Dataset:
    """Everything the training jobs need, in normalised units, plus how to map back."""

    train: WindowSet
    val: WindowSet
    test: WindowSet
    scaler: MinMaxScaler  # for the K cells the model serves (group 0)
    n_steps: int
    n_vnfs: int
    interval_minutes: int
    cell_ids: tuple[int, ...]  # the K served cells
    source: str
    fingerprint: str
    start: np.datetime64  # UTC start of row 0 of the series
    n_groups: int = 1
    gaps_dropped: dict[str, int] = field(default_factory=dict)
    split: str = "70/15/15"  # the fold's name, or the fractions

    @property
    def steps_per_day(self) -> int:
        return MINUTES_PER_DAY // self.interval_minutes

    def target_times(self, windows: WindowSet) -> np.ndarray:
        """(M,) UTC start of each window's target interval, datetime64[m]."""
        offsets = (windows.target_index * self.interval_minutes).astype("timedelta64[m]")
        times: np.ndarray = self.start + offsets
        return times

    def target_days(self, windows: WindowSet) -> np.ndarray:
        """(M,) the UTC calendar day of each target, datetime64[D] (the bootstrap's blocks)."""
        return self.target_times(windows).astype("datetime64[D]")


def calendar_features(times: np.ndarray) -> np.ndarray:
    """(...) UTC times -> (..., CALENDAR_FEATURES) float32: sin and cos of the time of day,
    then of the time of week (continuous phases, so the hour before midnight sits next to the
    hour after it)."""
    minutes = times.astype("datetime64[m]").astype(np.int64)
    phases = [
        2 * np.pi * (minutes % period) / period for period in (MINUTES_PER_DAY, MINUTES_PER_WEEK)
    ]
    columns = [f(phase) for phase in phases for f in (np.sin, np.cos)]
    return np.stack(columns, axis=-1).astype(np.float32)  # (..., CALENDAR_FEATURES)


def window_calendar(target_times: np.ndarray, length: int, interval_minutes: int) -> np.ndarray:
    """(M,) UTC target times -> (M, L, CALENDAR_FEATURES) float32: the calendar columns of
    windows of `length` steps; row j holds the calendar of the step after it, so the last row
    holds the target's (the training windows' and the service's requests' alike)."""
    ahead = (np.arange(length) - (length - 1)) * interval_minutes  # (L,) <= 0
    times = target_times.astype("datetime64[m]")[:, None] + ahead.astype("timedelta64[m]")
    return calendar_features(times)  # (M, L, CALENDAR_FEATURES)


def with_calendar(data: Dataset) -> Dataset:
    """The calendar lever (DDNNConfig.calendar): every window gets CALENDAR_FEATURES more
    columns after its demand's; row j holds the calendar of the step after it, so the last row
    holds the target's. The targets, scaler and cells stay the demand's."""

    def extended(windows: WindowSet) -> WindowSet:
        length = windows.inputs.shape[1]
        calendar = window_calendar(data.target_times(windows), length, data.interval_minutes)
        inputs = np.concatenate([windows.inputs, calendar], axis=2)
        return replace(windows, inputs=np.ascontiguousarray(inputs, dtype=np.float32))

    return replace(
        data, train=extended(data.train), val=extended(data.val), test=extended(data.test)
    )


def split_bounds(n_rows: int, fractions: SplitFractions) -> list[tuple[int, int]]:
    """Contiguous [start, stop) target rows of the train, validation and test periods."""
    train_end = int(round(n_rows * fractions.train))
    val_end = int(round(n_rows * (fractions.train + fractions.val)))
    return [(0, train_end), (train_end, val_end), (val_end, n_rows)]


def training_end(series: DemandSeries, split: Split) -> np.datetime64:
    """The first instant after the training period: what cell choice and scaling may see."""
    if isinstance(split, Fold):
        return split.val_start
    train_end = split_bounds(series.values.shape[0], split)[0][1]
    offset = np.timedelta64(train_end * series.interval_minutes, "m")
    end: np.datetime64 = series.start + offset
    return end


def make_windows(scaled: np.ndarray, n_steps: int, start: int, stop: int) -> tuple[np.ndarray, ...]:
    """Windows whose target lies in rows [start, stop); the N inputs are the rows just before
    it (possibly before `start`, never after the target). Windows touching a NaN are dropped.

    scaled: (T, K). Returns inputs (M, N, K), targets (M, K), target rows (M,).
    """
    first = max(start, n_steps)
    if stop <= first:
        empty = np.empty((0, n_steps, scaled.shape[1]), dtype=np.float32)
        return empty, np.empty((0, scaled.shape[1]), np.float32), np.empty(0, np.int64)
    segment = scaled[first - n_steps : stop]
    views = np.lib.stride_tricks.sliding_window_view(segment, n_steps + 1, axis=0)  # (M, K, N+1)
    views = views.transpose(0, 2, 1)  # (M, N+1, K)
    valid = ~np.isnan(views).any(axis=(1, 2))
    inputs = np.ascontiguousarray(views[valid, :n_steps], dtype=np.float32)
    targets = np.ascontiguousarray(views[valid, n_steps], dtype=np.float32)
    rows = np.arange(first, stop, dtype=np.int64)[valid]
    return inputs, targets, rows


def _stack_groups(
    scaled: np.ndarray, n_vnfs: int, n_steps: int, bounds: tuple[int, int]
) -> WindowSet:
    parts = []
    for group in range(scaled.shape[1] // n_vnfs):
        cols = scaled[:, group * n_vnfs : (group + 1) * n_vnfs]
        inputs, targets, rows = make_windows(cols, n_steps, *bounds)
        parts.append((inputs, targets, rows, np.full(len(rows), group, dtype=np.int64)))
    return WindowSet(*(np.concatenate([p[i] for p in parts]) for i in range(4)))


def prepare_dataset(
    series: DemandSeries,
    n_steps: int,
    n_vnfs: int,
    split: Split = SplitFractions(),
) -> Dataset:
    """Scale per VNF on the training period, split by target, window each split (stacking
    groups of K cells)."""
    n_rows, n_cells = series.values.shape
    if n_cells < n_vnfs or n_cells % n_vnfs:
        raise WindowError(
            f"{series.source}: {n_cells} cells cannot form groups of K={n_vnfs}; "
            f"select K cells (or a multiple of K) first"
        )
    bounds = split.bounds(series) if isinstance(split, Fold) else split_bounds(n_rows, split)
    _check_bounds(bounds, n_steps, series.source)
    scaler_all = MinMaxScaler.fit(series.values[: bounds[0][1]])
    scaled = scaler_all.transform(series.values)
    train, val, test = (_stack_groups(scaled, n_vnfs, n_steps, b) for b in bounds)
    for name, windows in (("train", train), ("validation", val), ("test", test)):
        if len(windows) == 0:
            raise WindowError(f"{series.source}: the {name} split has no window without gaps")
    return Dataset(
        train=train,
        val=val,
        test=test,
        scaler=scaler_all.subset(slice(0, n_vnfs)),
        n_steps=n_steps,
        n_vnfs=n_vnfs,
        interval_minutes=series.interval_minutes,
        cell_ids=series.cell_ids[:n_vnfs],
        source=series.source,
        fingerprint=series.fingerprint(),
        start=series.start,
        n_groups=n_cells // n_vnfs,
        gaps_dropped={"missing_samples": int(np.isnan(series.values).sum())},
        split=split.name if isinstance(split, Fold) else _fractions_name(split),
    )


def _check_bounds(bounds: list[tuple[int, int]], n_steps: int, source: str) -> None:
    (_, train_end), (val_start, val_end), (test_start, test_end) = bounds
    if train_end <= n_steps:
        raise WindowError(
            f"{source}: the training period has {train_end} rows, not enough for N={n_steps} "
            f"inputs plus a target; use more data or a smaller N"
        )
    if val_end <= val_start or test_end <= test_start:
        raise WindowError(
            f"{source}: the validation or test period is empty (target rows {bounds}); "
            "check the fold's dates against the data"
        )


def _minute(moment: object) -> np.datetime64:
    try:
        minute: np.datetime64 = np.datetime64(moment, "m")  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise WindowError(f"{moment!r} is not a timestamp: {exc}") from None
    return minute


def _fractions_name(fractions: SplitFractions) -> str:
    return "/".join(f"{100 * f:.0f}" for f in (fractions.train, fractions.val, fractions.test))
