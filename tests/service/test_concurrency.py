"""Concurrency: remote requests wait out the RTT together and share cloud batches; reloads
swap the pair under load without a failed request. httpx.AsyncClient over ASGITransport (which
does not run the lifespan, so the test enters the app's lifespan context itself)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from service.main import create_app
from tests.factories import demand_payload
from tests.service.conftest import ADMIN_KEY, K, N, make_settings
from tests.service.test_lifecycle import SwitchableLoader

pytestmark = pytest.mark.integration

RTT_MS = 50.0
CLIENTS = 64


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            yield client


def cloud_passes(metrics: str) -> int:
    match = re.search(r"^ddnn_cloud_batch_size_count (\S+)$", metrics, re.MULTILINE)
    assert match is not None
    return int(float(match.group(1)))


async def _concurrent_remote() -> tuple[list[httpx.Response], float, int]:
    settings = make_settings(rtt_ms=RTT_MS, cloud_batch_wait_ms=5.0)
    app = create_app(settings, loader=SwitchableLoader(), resolver=None)
    async with serving(app) as client:
        body = {"demand": demand_payload(N, K), "policy": "remote"}
        assert (await client.post("/v1/allocations", json=body)).status_code == 200  # warm-up
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.post("/v1/allocations", json=body) for _ in range(CLIENTS))
        )
        elapsed = time.perf_counter() - started
        passes = cloud_passes((await client.get("/metrics")).text) - 1
    return list(responses), elapsed, passes


def test_post_allocation_concurrent_remote_requests_overlap_and_batch() -> None:
    responses, elapsed, passes = asyncio.run(_concurrent_remote())
    assert [r.status_code for r in responses] == [200] * CLIENTS
    assert all(r.json()["exit"] == "remote" for r in responses)
    assert all(r.json()["latency_ms"]["rtt"] >= RTT_MS * 0.9 for r in responses)
    # serially 64 x 50 ms = 3.2 s; overlapped they take about one RTT plus compute
    assert elapsed < CLIENTS * RTT_MS / 1e3 / 4, f"{elapsed:.2f} s for {CLIENTS} requests"
    assert passes < CLIENTS / 4, f"{passes} cloud passes for {CLIENTS} requests: not batched"


async def _reload_under_load() -> tuple[list[httpx.Response], httpx.Response]:
    loader = SwitchableLoader(version="1")
    app = create_app(make_settings(rtt_ms=RTT_MS), loader=loader, resolver=None)
    async with serving(app) as client:
        body = {"demand": demand_payload(N, K), "policy": "remote"}
        loader.version = "2"
        requests = [client.post("/v1/allocations", json=body) for _ in range(CLIENTS)]
        reload = client.post("/v1/models/reload", headers={"X-API-Key": ADMIN_KEY})
        results = await asyncio.gather(*requests[:32], reload, *requests[32:])
        answers, reloaded = results[:32] + results[33:], results[32]
        after = await client.post("/v1/allocations", json=body)
    return [*answers, after], reloaded


def test_post_reload_under_load_fails_no_request() -> None:
    answers, reloaded = asyncio.run(_reload_under_load())
    assert reloaded.status_code == 200 and reloaded.json()["current"]["ddnn"] == "2"
    assert [a.status_code for a in answers] == [200] * (CLIENTS + 1)
    assert all(a.json()["exit"] == "remote" for a in answers)  # no fallback during the swap
    assert answers[-1].json()["models"]["ddnn"] == "2"
