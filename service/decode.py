"""Decode: a request's demand (data units, K lists of N samples per window, as JSON lists or
base64 float32) checked against the loaded model's K and N, for finiteness and for negative
values, then scaled with the bundle's per-VNF scaler into the model's (B, N, K) float32 input
(with the calendar of each window's target time after the K columns, for a DDNN that reads it).
Every error names what was wrong and where (e.g. ``windows[3][2][17]``)."""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import pybase64
import torch

from ddnn.windows import window_calendar
from service.pair import FLOAT32_BYTES, ServingPair

MAX_DEMAND = 1e30  # larger values overflow float32 once scaled
Z_LIMIT = 1.0  # z is the edge LSTM's output, within [-1, 1]
CONTEXT_LIMIT = MAX_DEMAND  # the context travels with z: the edge's transform of the demand
STACK_AT_ONCE = 64  # windows converted by one numpy call; more: one window at a time


class InvalidDemand(ValueError):
    """The request's windows do not fit the loaded model; the message names what is wrong."""


class BatchTooLarge(ValueError):
    """More windows than the batch limit."""


def decode_demand(demand: Sequence[Sequence[float]], pair: ServingPair) -> np.ndarray:
    """One request's K lists of N samples -> (1, K, N) float64, checked."""
    _check_window_shape(demand, pair, "demand")
    windows = np.asarray(demand, dtype=np.float64)[None]
    _check_values(windows, _named(single=True))
    return windows


def decode_windows(
    windows: Sequence[Sequence[Sequence[float]]] | None,
    windows_base64: str | None,
    pair: ServingPair,
    max_batch: int,
) -> np.ndarray:
    """A batch request's windows (JSON lists or base64 float32) -> (B, K, N), checked."""
    if (windows is None) == (windows_base64 is None):
        raise InvalidDemand("give exactly one of `windows` and `windows_base64`")
    if windows is not None:
        if len(windows) > max_batch:
            raise BatchTooLarge(f"batch of {len(windows)} windows exceeds the limit of {max_batch}")
        array = _stack_windows(windows, pair)
    else:
        array = _decode_base64(windows_base64 or "", pair, max_batch)
    _check_values(array, _named(single=False))
    return array


def _stack_windows(windows: Sequence[Sequence[Sequence[float]]], pair: ServingPair) -> np.ndarray:
    """One numpy call for a small batch; window by window for a big one, so that on a worker
    thread the event loop gets the GIL between windows (one call holds it for all of them)."""
    shape = (len(windows), pair.n_vnfs, pair.n_steps)
    try:
        if len(windows) <= STACK_AT_ONCE:
            array = np.asarray(windows, dtype=np.float64)
        else:
            array = np.empty(shape)
            for b, window in enumerate(windows):
                array[b] = _window_array(window, shape[1:])
    except ValueError:
        array = np.empty(0)  # ragged: the loop below names the offending window
    if array.shape != shape:
        for b, window in enumerate(windows):
            _check_window_shape(window, pair, f"windows[{b}]")
        raise InvalidDemand(f"windows have shape {array.shape}, expected (B, K, N)")
    return array


def _window_array(window: Sequence[Sequence[float]], shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(window, dtype=np.float64)
    if array.shape != shape:  # assigning it would broadcast a (1, N) window silently
        raise ValueError(f"window of shape {array.shape}")
    return array


def _decode_base64(text: str, pair: ServingPair, max_batch: int) -> np.ndarray:
    k, n = pair.n_vnfs, pair.n_steps
    per_window = k * n * FLOAT32_BYTES
    size = len(text) * 3 // 4 - text[-2:].count("=")
    if size // per_window > max_batch:
        raise BatchTooLarge(
            f"batch of {size // per_window} windows exceeds the limit of {max_batch}"
        )
    try:  # strict (no stray characters), SIMD: ~1 ms for 12.6 MB, binascii's ~50 ms
        raw = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidDemand(f"windows_base64 is not valid base64: {exc}") from exc
    if not raw or len(raw) % per_window:
        raise InvalidDemand(
            f"windows_base64 decodes to {len(raw)} bytes, not a positive multiple of "
            f"K*N*4 = {per_window} (float32 windows of shape (K={k}, N={n}))"
        )
    return np.frombuffer(raw, dtype="<f4").reshape(-1, k, n)


def _check_window_shape(window: Sequence[Sequence[float]], pair: ServingPair, where: str) -> None:
    k, n = pair.n_vnfs, pair.n_steps
    if len(window) != k:
        raise InvalidDemand(
            f"{where} holds {len(window)} lists; the model needs K={k} (one list of N={n} "
            f"samples per VNF, oldest first)"
        )
    for row, samples in enumerate(window):
        if len(samples) != n:
            raise InvalidDemand(
                f"{where}[{row}] holds {len(samples)} samples; the model needs N={n} per VNF "
                f"(K={k} lists, oldest first)"
            )


Where = Callable[[int, int, int], str]  # (b, k, n) -> how a request names that element


def _named(single: bool) -> Where:
    if single:
        return lambda b, k, n: f"demand[{k}][{n}]"
    return lambda b, k, n: f"windows[{b}][{k}][{n}]"


def _check_values(windows: np.ndarray, where: Where) -> None:
    """Finite, >= 0 and not absurdly large: two vectorised reductions (NaN fails both), then a
    precise message on failure."""
    low, high = float(windows.min()), float(windows.max())
    if low >= 0 and high <= MAX_DEMAND:
        return
    ok = windows >= 0  # False for NaN as well as for negatives
    problems = ~ok | (np.abs(np.nan_to_num(windows, nan=0.0)) > MAX_DEMAND)
    b, k, n = (int(i) for i in np.argwhere(problems)[0])
    name, value = where(b, k, n), float(windows[b, k, n])
    if not np.isfinite(value):
        raise InvalidDemand(f"{name} is {value}: demand must be finite numbers (no NaN or inf)")
    if value < 0:
        raise InvalidDemand(f"{name} = {value:g} is negative: demand must be >= 0")
    raise InvalidDemand(f"{name} = {value:g} is too large (at most {MAX_DEMAND:g})")


# ---- the cloud role's inputs ------------------------------------------------------------------


def decode_cloud_inputs(
    z: Sequence[Sequence[Sequence[float]]] | np.ndarray,
    context: Sequence[Sequence[float]] | np.ndarray,
    *,
    n_steps: int,
    edge_hidden: int,
    context_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """z (B, N, H_e) and context (B, C) (nested lists from JSON, or arrays from a binary body)
    as float32 arrays; a ragged or wrongly sized list is named (e.g. ``z[1] holds 11 items,
    not N = 12``)."""
    batch = len(z)
    z_array = _regular(z, (batch, n_steps, edge_hidden), ("B", "N", "H_e"), "z")
    context_array = _regular(context, (batch, context_size), ("B", "C"), "context")
    check_cloud_values(z_array, context_array)
    return z_array.astype(np.float32), context_array.astype(np.float32)


def check_cloud_values(z: np.ndarray, context: np.ndarray) -> None:
    """z within [-1, 1] (an LSTM's output), context within +-MAX_DEMAND (the edge's transform
    of demand), both finite; the first value outside is named."""
    for name, array, limit in (("z", z, Z_LIMIT), ("context", context, CONTEXT_LIMIT)):
        outside = ~(np.abs(array) <= limit)  # NaN is outside too
        if not outside.any():
            continue
        position = tuple(int(i) for i in np.argwhere(outside)[0])
        where = name + "".join(f"[{i}]" for i in position)
        value = float(array[position])
        if not np.isfinite(value):
            raise InvalidDemand(f"{where} is {value}: z and context must be finite numbers")
        raise InvalidDemand(f"{where} = {value:g} is outside [-{limit:g}, {limit:g}]")


def _regular(
    values: Sequence[object] | np.ndarray,
    shape: tuple[int, ...],
    labels: tuple[str, ...],
    name: str,
) -> np.ndarray:
    try:  # float64 (JSON numbers) until checked, then float32 for the model
        array = np.asarray(values, dtype=np.float64)
    except ValueError:  # ragged: the walk below names the first misfit
        array = np.empty(0, dtype=np.float32)
    if array.shape != shape:
        misfit = _first_misfit(values, shape, labels, name) or f"{name} has shape {array.shape}"
        raise InvalidDemand(f"{misfit}; expected ({', '.join(labels)}) = {shape}")
    return array


def _first_misfit(
    values: object, shape: tuple[int, ...], labels: tuple[str, ...], where: str
) -> str | None:
    """The first list whose length is not the expected one, e.g. 'z[1] holds 11 items, not
    N = 12' (None when every length fits)."""
    if not isinstance(values, Sequence | np.ndarray) or len(values) != shape[0]:
        size = len(values) if isinstance(values, Sequence | np.ndarray) else "no"
        return f"{where} holds {size} items, not {labels[0]} = {shape[0]}"
    for i, item in enumerate(values if len(shape) > 1 else ()):
        found = _first_misfit(item, shape[1:], labels[1:], f"{where}[{i}]")
        if found:
            return found
    return None


def with_target_calendar(
    windows: np.ndarray, target_times: Sequence[datetime] | None, pair: ServingPair, field: str
) -> np.ndarray:
    """(B, K, N) checked windows -> (B, K + 4, N) with the calendar of each window's target
    time (ddnn.windows.window_calendar, as the DDNN learned it) for a DDNN that reads it; the
    windows as they are for one that does not (a time given is then not used). `field`: the
    request's name for the times, for the error."""
    if not pair.reads_calendar:
        return windows
    if target_times is None:
        raise InvalidDemand(
            f"this model reads the target's calendar (GET /v1/models: reads_calendar): give "
            f"`{field}`, the UTC time of the slot being allocated"
        )
    if len(target_times) != windows.shape[0]:
        raise InvalidDemand(
            f"`{field}` holds {len(target_times)} time(s) for {windows.shape[0]} window(s)"
        )
    utc = [t.astimezone(UTC).replace(tzinfo=None) for t in target_times]
    times = np.array(utc, dtype="datetime64[m]")
    calendar = window_calendar(times, windows.shape[2], pair.config.interval_minutes)
    return np.concatenate([windows, calendar.transpose(0, 2, 1).astype(windows.dtype)], axis=1)


def scale_windows(windows: np.ndarray, pair: ServingPair) -> torch.Tensor:
    """(B, K, N) data units (K + 4 rows with the calendar's) -> (B, N, K [+ 4]) float32 model
    input on the pair's device; the calendar's rows are not scaled."""
    out = np.empty((windows.shape[0], pair.n_steps, pair.width), dtype=np.float32)
    np.subtract(windows.transpose(0, 2, 1), pair.low, out=out, casting="same_kind")
    out *= pair.inv_span
    tensor = torch.from_numpy(out)
    return tensor if pair.device.type == "cpu" else tensor.to(pair.device, non_blocking=True)


def check_windows(
    windows: np.ndarray, *, single: bool = False, where: Where | None = None
) -> np.ndarray:
    """(B, K, N) windows parsed elsewhere (service.fastjson, service.oip): the value checks of
    decode_windows (of decode_demand when single); `where` names an element the caller's way."""
    _check_values(windows, where or _named(single))
    return windows
