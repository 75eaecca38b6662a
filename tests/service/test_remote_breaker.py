"""The remote cloud's circuit: a half-open probe after the retry delay, late successes that do
not close it, and a batch's deadline that does not open it for single requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from service.cloud import CloudUnavailable, RemoteCloud, call_with_timeout
from service.main import create_app
from tests.factories import demand_payload
from tests.service.conftest import K, N, fake_loader, make_settings
from tests.service.test_cloud import sample

pytestmark = pytest.mark.integration

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def rows_of(request: httpx.Request) -> int:
    return len(json.loads(request.content)["z"])


def answer(rows: int) -> httpx.Response:
    body = {"y": [[1.0] * K] * rows, "ddnn_version": "1", "cloud_ms": 1.0, "queue_ms": 0.0}
    return httpx.Response(200, json={**body, "batch_size": rows})


def remote(handler: Handler, retry_after_s: float) -> RemoteCloud:
    return RemoteCloud(
        "http://cloud",
        timeout_s=5.0,
        retry_after_s=retry_after_s,
        max_batch=64,
        max_wait_s=0.0,
        binary=False,
        client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )


async def outcome(cloud: RemoteCloud, rows: int = 1) -> str:
    """'ok', or the kind of CloudUnavailable."""
    try:
        await cloud.infer(*sample(0.2, rows=rows), ddnn_version="1")
    except CloudUnavailable as exc:
        return exc.kind
    return "ok"


def test_half_open_lets_one_probe_through_then_closes() -> None:
    calls: list[int] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(503, json={"message": "down"})
        await asyncio.sleep(0.2)  # the probe takes a while
        return answer(rows_of(request))

    async def run() -> list[str]:
        cloud = remote(handle, retry_after_s=0.2)
        seen = [await outcome(cloud), await outcome(cloud)]  # fails, then skipped
        await asyncio.sleep(0.25)
        probe = asyncio.ensure_future(outcome(cloud))
        await asyncio.sleep(0.05)
        seen.append(await outcome(cloud))  # while the probe is in flight: skipped
        seen += [await probe, await outcome(cloud)]  # the probe closed the circuit
        return seen

    assert asyncio.run(run()) == ["error", "circuit_open", "circuit_open", "ok", "ok"]
    assert len(calls) == 3  # the failure, the probe, the call after it


def test_half_open_probe_failure_opens_again() -> None:
    calls: list[int] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"message": "down"})

    async def run() -> list[str]:
        cloud = remote(handle, retry_after_s=0.2)
        seen = [await outcome(cloud)]
        await asyncio.sleep(0.25)
        seen += [await outcome(cloud), await outcome(cloud)]
        return seen

    assert asyncio.run(run()) == ["error", "error", "circuit_open"]
    assert len(calls) == 2


def test_late_success_of_an_older_batch_does_not_close_the_circuit() -> None:
    release = asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        rows = rows_of(request)
        if rows == 1:
            return httpx.Response(503, json={"message": "down"})
        await release.wait()  # the batch answers late, after the single request failed
        return answer(rows)

    async def run() -> list[str]:
        cloud = remote(handle, retry_after_s=60.0)
        batch = asyncio.ensure_future(outcome(cloud, rows=3))
        await asyncio.sleep(0.05)  # the batch is on the wire
        seen = [await outcome(cloud)]  # a single request fails: the circuit opens
        release.set()
        seen += [await batch, await outcome(cloud)]
        return seen

    assert asyncio.run(run()) == ["error", "ok", "circuit_open"]


def test_batch_deadline_does_not_open_the_circuit() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        rows = rows_of(request)
        if rows > 1:
            await asyncio.sleep(0.5)  # a big batch: slower than its deadline
        return answer(rows)

    async def run() -> tuple[str, str]:
        cloud = remote(handle, retry_after_s=60.0)
        try:
            await call_with_timeout(
                cloud,
                *sample(0.2, rows=8),
                ddnn_version="1",
                timeout_s=0.05,
                count_timeout=False,
            )
        except CloudUnavailable as exc:
            batch = exc.kind
        return batch, await outcome(cloud)

    assert asyncio.run(run()) == ("timeout", "ok")


def test_post_batch_timeout_leaves_single_requests_remote() -> None:
    """Through the service: a batch whose cloud pass misses DDNN_CLOUD_BATCH_TIMEOUT_S answers
    locally; the next single request still goes to the cloud."""

    async def handle(request: httpx.Request) -> httpx.Response:
        rows = rows_of(request)
        if rows > 1:
            await asyncio.sleep(1.0)
        return answer(rows)

    settings = make_settings(
        cloud_url="http://cloud", cloud_batch_timeout_s=0.1, cloud_retry_after_s=60
    )
    app = create_app(settings, loader=fake_loader(), resolver=None)
    with TestClient(app) as client:
        app.state.runtime.remote = remote(handle, retry_after_s=60.0)
        windows = [demand_payload(N, K, seed=s) for s in range(4)]
        batch = client.post("/v1/allocations/batch", json={"windows": windows, "policy": "remote"})
        assert batch.status_code == 200
        assert {r["exit"] for r in batch.json()["results"]} == {"local"}
        assert "did not answer within 100 ms" in batch.json()["results"][0]["rationale"]["fallback"]
        single = client.post("/v1/allocations", json={"demand": windows[0], "policy": "remote"})
        assert single.status_code == 200
        assert single.json()["exit"] == "remote", single.json()["rationale"]["fallback"]
