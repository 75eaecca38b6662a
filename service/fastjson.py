"""The allocation endpoints' fast path for JSON demand: simdjson parses the body and hands the
numbers over as one float64 buffer, without a Python float per value. On 256 windows (590k
numbers) pydantic's parse plus numpy's conversion of the lists cost about 3x as much, on one
window (2,304 numbers) about 120 us against 40 us.

Only a body that is exactly a well-formed request (`windows`, or `demand` for one window) takes
this path: anything else (invalid JSON, duplicate or unknown keys, `windows_base64`, ragged windows, non-numbers,
numbers beyond float64) returns None, and the regular path parses it and says what is wrong, with
its usual messages. The other fields are validated by the same pydantic model as there. No
FastAPI here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simdjson
from pydantic import ValidationError

from service.schemas import AllocationRequest, BatchAllocationRequest, read_target_time

REUSE_UP_TO_BYTES = 16 * 1024 * 1024  # a parser keeps its buffers: reused only for these
BATCH_KEYS = frozenset({"windows", "policy", "transmission_cost"})  # windows_base64: regular
SINGLE_KEYS = frozenset({"demand", "policy", "transmission_cost", "target_time"})
STAND_IN: list[list[float]] = [[0.0]]  # validates AllocationRequest's knobs; never used
_local = threading.local()


@dataclass(frozen=True)
class FastBatch:
    request: BatchAllocationRequest  # policy and transmission_cost, validated; windows None
    windows: np.ndarray  # (B, K, N) float64, not yet checked for values


@dataclass(frozen=True)
class FastSingle:
    request: AllocationRequest  # policy and transmission_cost, validated; demand: not used
    windows: np.ndarray  # (1, K, N) float64, not yet checked for values


def parse_batch(body: bytes, n_vnfs: int, n_steps: int, max_batch: int) -> FastBatch | None:
    """POST /v1/allocations/batch: the request and its (B, K, N) windows, or None (the regular
    path)."""
    found = _parse(body, BATCH_KEYS, n_vnfs, n_steps, max_batch)
    if found is None:
        return None
    windows, others = found
    try:
        request = BatchAllocationRequest.model_validate(others)
    except ValidationError:
        return None
    return FastBatch(request, windows)


def parse_single(body: bytes, n_vnfs: int, n_steps: int) -> FastSingle | None:
    """POST /v1/allocations: the request and its window as (1, K, N), or None (the regular
    path). The knobs are validated by AllocationRequest itself, with a stand-in demand."""
    found = _parse(body, SINGLE_KEYS, n_vnfs, n_steps, None)
    if found is None:
        return None
    windows, others = found
    try:
        if "target_time" in others:  # a string here; the model takes it as a datetime
            others["target_time"] = read_target_time(others["target_time"])
        request = AllocationRequest.model_validate({**others, "demand": STAND_IN})
    except (ValidationError, TypeError):
        return None
    return FastSingle(request, windows)


def _parse(
    body: bytes, keys: frozenset[str], n_vnfs: int, n_steps: int, max_batch: int | None
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The (B, K, N) array under the data key (`windows`, or `demand` when max_batch is None)
    and the other fields as Python values; None unless the body is exactly well-formed."""
    data_key = "demand" if max_batch is None else "windows"
    # "[" first: memchr, ~10x faster than the key's search on a 12 MB windows_base64 body
    if b"[" not in body or f'"{data_key}"'.encode() not in body:
        return None
    try:
        return _read(_parser(len(body)), body, keys, data_key, (n_vnfs, n_steps), max_batch)
    except (ValueError, TypeError, RuntimeError, KeyError):  # simdjson's errors: regular path
        return None


def _parser(size: int) -> simdjson.Parser:
    if size > REUSE_UP_TO_BYTES:
        return simdjson.Parser()
    parser: simdjson.Parser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    return parser


def _read(
    parser: simdjson.Parser,
    body: bytes,
    allowed: frozenset[str],
    data_key: str,
    shape: tuple[int, int],
    max_batch: int | None,
) -> tuple[np.ndarray, dict[str, Any]] | None:
    doc = parser.parse(body)
    try:
        if not isinstance(doc, simdjson.Object):
            return None
        keys = list(doc.keys())
        if len(keys) != len(set(keys)) or data_key not in keys or not allowed.issuperset(keys):
            return None
        data = doc[data_key]
        if not isinstance(data, simdjson.Array):
            return None
        windows = [data] if max_batch is None else data
        if not _shaped(windows, shape, max_batch or 1):
            return None
        if _brackets(body) != (max_batch is not None) + len(windows) * (1 + shape[0]):
            return None  # a list nested in a row (as_buffer would flatten it)
        flat = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
        others: dict[str, Any] = {key: doc[key] for key in keys if key != data_key}
        del data, windows
    finally:
        del doc  # the parser may parse again only once its documents are gone
    return flat.reshape(-1, *shape), others


def _brackets(body: bytes) -> int:
    """How many "[" the body holds (numpy's vectorised compare: ~3x faster than bytes.count)."""
    return int(np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == ord("[")))


def _shaped(windows: Sequence[Any], shape: tuple[int, int], max_batch: int) -> bool:
    """B (1..max_batch) windows of K lists of N values each (values checked by as_buffer)."""
    n_vnfs, n_steps = shape
    if not 0 < len(windows) <= max_batch:
        return False
    for window in windows:
        if not isinstance(window, simdjson.Array) or len(window) != n_vnfs:
            return False
        for row in window:
            if not isinstance(row, simdjson.Array) or len(row) != n_steps:
                return False
    return True
