"""The event loop stays free while big requests run: a large body is parsed, decoded and its
answer encoded off the loop (so /healthz answers at once meanwhile), and a big batch's remote
subset goes to the cloud in the batcher's chunks, so single requests are not stuck behind it."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import torch

from service.cloud import DynamicBatcher
from service.main import create_app
from tests.service.conftest import K, N, make_settings
from tests.service.test_cloud import Recorder, sample
from tests.service.test_concurrency import serving
from tests.service.test_lifecycle import SwitchableLoader

pytestmark = pytest.mark.integration

BIG_BATCH = 40_000  # windows: ~17 MB of JSON with the test model's K=4, N=12
HEALTHZ_DEADLINE_S = 0.25  # generous for a loaded machine; a blocked loop stalls for seconds
PROBE_EVERY_S = 0.01


@pytest.fixture
def quick_switches() -> Iterator[None]:
    """The service's own GIL switch interval (ddnn-serve sets it; tests start apps directly)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(make_settings().switch_interval_ms / 1e3)
    yield
    sys.setswitchinterval(previous)


def big_body(windows: int) -> bytes:
    values = np.random.default_rng(0).uniform(0, 100, size=(windows, K, N)).round(3)
    return json.dumps({"windows": values.tolist(), "policy": "local"}).encode()


async def healthz_while(
    request: asyncio.Future[httpx.Response], client: httpx.AsyncClient
) -> list[float]:
    """How long each /healthz probe took, counted from when it was due (a probe is due 10 ms
    after the last answer: a blocked loop delays the probe itself, not only its answer)."""
    times: list[float] = []
    while not request.done():
        due = time.perf_counter() + PROBE_EVERY_S
        await asyncio.sleep(PROBE_EVERY_S)
        response = await client.get("/healthz")
        assert response.status_code == 200
        times.append(time.perf_counter() - due)
    return times


async def _big_batch_and_healthz() -> tuple[httpx.Response, list[float]]:
    settings = make_settings(max_batch=BIG_BATCH)
    app = create_app(settings, loader=SwitchableLoader(), resolver=None)
    body = big_body(BIG_BATCH)
    async with serving(app) as client:
        headers = {"content-type": "application/json"}
        request = asyncio.ensure_future(
            client.post("/v1/allocations/batch", content=body, headers=headers, timeout=120)
        )
        await asyncio.sleep(0)  # the request starts
        times = await healthz_while(request, client)
        return await request, times


@pytest.mark.usefixtures("quick_switches")
def test_healthz_answers_while_a_large_batch_is_parsed_and_answered() -> None:
    response, times = asyncio.run(_big_batch_and_healthz())
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["results"]) == BIG_BATCH
    assert len(times) >= 5, f"the big request took only {len(times)} probes"
    slowest = max(times)
    assert slowest < HEALTHZ_DEADLINE_S, f"/healthz took {slowest:.3f} s during a big request"


def test_big_submission_goes_in_chunks_and_lets_single_requests_in_between() -> None:
    async def run() -> tuple[list[int], float, float]:
        runner = Recorder(delay_s=0.05)
        batcher = DynamicBatcher(runner, max_batch=4, max_wait_s=0.0)
        big = asyncio.ensure_future(batcher.submit(*sample(1.0, rows=12)))
        await asyncio.sleep(0.01)  # the first chunk runs
        single_started = time.perf_counter()
        answer = await batcher.submit(*sample(2.0))
        single_s = time.perf_counter() - single_started
        big_answer = await big
        assert float(answer.y[0, 0]) == 2.0 * N
        torch.testing.assert_close(big_answer.y, torch.full((12, K), 1.0 * N))
        return runner.sizes, single_s, big_answer.cloud_ms

    sizes, single_s, cloud_ms = asyncio.run(run())
    assert max(sizes) <= 4 and sum(sizes) == 13
    assert sizes.index(1) == 1, sizes  # right after the big submission's first chunk
    assert single_s < 0.15, f"the single request waited {single_s:.2f} s behind the big one"
    assert cloud_ms == pytest.approx(3.0)  # the big one's compute over its three chunks
