"""The batch endpoint's JSON fast path (service.fastjson): the same windows and knobs as the
regular path, and None (the regular path, with its messages) for anything not well-formed."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest

from service.fastjson import parse_batch, parse_single
from service.schemas import AllocationRequest, BatchAllocationRequest
from tests.factories import demand_payload
from tests.service.conftest import K, N

pytestmark = pytest.mark.unit


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def windows(count: int) -> list[list[list[float]]]:
    return [demand_payload(N, K, seed=s) for s in range(count)]


def test_fast_path_equals_the_regular_parse() -> None:
    raw = body(windows=windows(3), policy="ml", transmission_cost=0.25)
    fast = parse_batch(raw, K, N, max_batch=10)
    assert fast is not None
    regular = BatchAllocationRequest.model_validate_json(raw)
    np.testing.assert_array_equal(fast.windows, np.asarray(regular.windows, dtype=np.float64))
    assert fast.windows.shape == (3, K, N)
    assert (fast.request.policy, fast.request.transmission_cost) == ("ml", 0.25)
    assert fast.request.windows is None and fast.request.windows_base64 is None


def test_integers_and_no_knobs_take_the_fast_path() -> None:
    fast = parse_batch(body(windows=[[[1] * N] * K]), K, N, max_batch=10)
    assert fast is not None and fast.windows.dtype == np.float64
    assert fast.request.policy is None


def _with(window: Any) -> bytes:
    return body(windows=[window])


@pytest.mark.parametrize(
    "raw",
    [
        body(windows_base64="AAAA"),
        b"{not json",
        b'{"windows": [[1.0]], "windows": [[2.0]]}',
        body(windows=windows(1), extra=1),
        body(windows=windows(1), windows_base64="AAAA"),
        body(windows=windows(1), policy=["ml"]),
        body(windows=windows(1), transmission_cost=-1.0),
        body(windows=windows(11)),
        body(windows=[]),
        _with([[1.0] * N] * (K - 1)),
        _with([[1.0] * (N + 1)] + [[1.0] * (N - 1)] + [[1.0] * N] * (K - 2)),
        _with([[1.0] * (N - 1) + ["x"]] + [[1.0] * N] * (K - 1)),
        _with([[1.0] * (N - 1) + [None]] + [[1.0] * N] * (K - 1)),
        _with([[1.0] * (N - 1) + [True]] + [[1.0] * N] * (K - 1)),
        _with([[1.0] * (N - 1) + [[1.0]]] + [[1.0] * N] * (K - 1)),
        json.dumps({"windows": [[[1.0] * N] * K]}).replace("1.0", "1e999", 1).encode(),
        b"[1, 2]",
    ],
)
def test_anything_not_well_formed_takes_the_regular_path(raw: bytes) -> None:
    assert parse_batch(raw, K, N, max_batch=10) is None
    good = parse_batch(body(windows=windows(1)), K, N, max_batch=10)  # the parser still works
    assert good is not None


def test_each_thread_parses_with_its_own_parser() -> None:
    raw = body(windows=windows(2))
    results: list[bool] = []

    def work() -> None:
        results.extend(parse_batch(raw, K, N, max_batch=10) is not None for _ in range(20))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 80


def test_single_window_fast_path_equals_the_regular_parse() -> None:
    raw = body(demand=windows(1)[0], policy="cost_aware", transmission_cost=3)
    fast = parse_single(raw, K, N)
    assert fast is not None
    regular = AllocationRequest.model_validate_json(raw)
    np.testing.assert_array_equal(fast.windows[0], np.asarray(regular.demand))
    assert fast.windows.shape == (1, K, N)
    assert (fast.request.policy, fast.request.transmission_cost) == ("cost_aware", 3.0)


@pytest.mark.parametrize(
    "raw",
    [
        body(demand=windows(2)),  # a batch where one window belongs
        body(demand=[[1.0] * N] * (K + 1)),
        body(demand=[[1.0] * (N - 1) + [[1.0]]] + [[1.0] * N] * (K - 1)),
        body(demand=windows(1)[0], policy="nope"),
        body(demand=windows(1)[0], windows=windows(1)),
        body(windows=windows(1)),
    ],
)
def test_single_not_well_formed_takes_the_regular_path(raw: bytes) -> None:
    assert parse_single(raw, K, N) is None


@pytest.mark.parametrize(
    "target_time",
    [
        "2013-11-28T18:00:00Z",
        "2013-11-28T19:00:00+01:00",
        "2013-11-28T18:00:00",
        "noon",
        1700000000,
    ],
)
def test_a_single_request_s_time_is_read_as_the_regular_path_reads_it(target_time: Any) -> None:
    raw = body(demand=demand_payload(N, K), target_time=target_time)
    fast = parse_single(raw, K, N)
    try:
        regular = AllocationRequest.model_validate_json(raw)
    except ValueError:
        assert fast is None  # the regular path says what is wrong
        return
    assert fast is not None and fast.request.target_time == regular.target_time
