"""Unit tests of service.cloud: dynamic batching, the simulated link, the remote client."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import torch

from service.cloud import (
    CloudUnavailable,
    DynamicBatcher,
    LocalCloud,
    RemoteCloud,
    RunResult,
    SimulatedLink,
    call_with_timeout,
)
from tests.service.conftest import K, N, make_bundles

pytestmark = pytest.mark.unit


class Recorder:
    """A runner that records batch sizes and answers y = sum of z over time (per sample)."""

    def __init__(self, delay_s: float = 0.0, fail: Exception | None = None) -> None:
        self.sizes: list[int] = []
        self.delay_s = delay_s
        self.fail = fail

    async def __call__(self, z: torch.Tensor, context: torch.Tensor) -> RunResult:
        self.sizes.append(int(z.shape[0]))
        await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return RunResult(y=z.sum(dim=(1, 2)).unsqueeze(1).repeat(1, K), compute_ms=1.0)


def sample(value: float, rows: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((rows, N, 1), value), torch.zeros(rows, K)


def test_submit_concurrent_requests_share_one_batch() -> None:
    async def run() -> tuple[list[int], list[float]]:
        runner = Recorder()
        batcher = DynamicBatcher(runner, max_batch=64, max_wait_s=0.01)
        answers = await asyncio.gather(*(batcher.submit(*sample(i)) for i in range(10)))
        return runner.sizes, [float(a.y[0, 0]) for a in answers]

    sizes, values = asyncio.run(run())
    assert sizes == [10]
    assert values == [i * N for i in range(10)]  # each caller gets its own rows back


def test_submit_respects_max_batch() -> None:
    async def run() -> list[int]:
        runner = Recorder(delay_s=0.01)
        batcher = DynamicBatcher(runner, max_batch=4, max_wait_s=0.01)
        await asyncio.gather(*(batcher.submit(*sample(i)) for i in range(10)))
        return runner.sizes

    sizes = asyncio.run(run())
    assert sum(sizes) == 10 and max(sizes) <= 4


def test_submit_arrivals_during_a_pass_form_the_next_batch() -> None:
    async def run() -> list[int]:
        runner = Recorder(delay_s=0.05)
        batcher = DynamicBatcher(runner, max_batch=64, max_wait_s=0.0)
        first = asyncio.ensure_future(batcher.submit(*sample(0)))
        await asyncio.sleep(0.01)  # the first pass is running now
        await asyncio.gather(first, *(batcher.submit(*sample(i)) for i in range(1, 6)))
        return runner.sizes

    assert asyncio.run(run()) == [1, 5]


def test_submit_failure_reaches_every_caller() -> None:
    async def run() -> list[BaseException | object]:
        batcher = DynamicBatcher(Recorder(fail=RuntimeError("boom")), max_batch=8, max_wait_s=0.001)
        return await asyncio.gather(
            *(batcher.submit(*sample(i)) for i in range(3)), return_exceptions=True
        )

    results = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) and str(r) == "boom" for r in results)


def test_local_cloud_batched_equals_single_pass() -> None:
    model = make_bundles()[0].build()
    z = torch.randn(6, N, 1)
    context = torch.rand(6, K)

    async def run() -> torch.Tensor:
        cloud = LocalCloud(model.cloud, max_batch=64, max_wait_s=0.005)
        answers = await asyncio.gather(
            *(cloud.infer(z[i : i + 1], context[i : i + 1]) for i in range(6))
        )
        await cloud.close()
        assert {a.batch_size for a in answers} == {6}
        return torch.cat([a.y for a in answers])

    with torch.inference_mode():
        expected = model.cloud(z, context)
    torch.testing.assert_close(asyncio.run(run()), expected, rtol=1e-5, atol=1e-6)


def test_simulated_link_waits_the_rtt_with_jitter_bounds() -> None:
    model = make_bundles()[0].build()

    async def run() -> list[float]:
        cloud = LocalCloud(model.cloud, max_batch=8, max_wait_s=0.0)
        link = SimulatedLink(cloud, rtt_ms=30.0, jitter_ms=10.0)
        answers = [await link.infer(*sample(0.1), ddnn_version="1") for _ in range(5)]
        await cloud.close()
        return [a.rtt_ms for a in answers]

    rtts = asyncio.run(run())
    assert all(19.0 <= r <= 60.0 for r in rtts), rtts


def test_call_with_timeout_slow_link_raises_unavailable() -> None:
    model = make_bundles()[0].build()

    async def run() -> CloudUnavailable:
        cloud = LocalCloud(model.cloud, max_batch=8, max_wait_s=0.0)
        link = SimulatedLink(cloud, rtt_ms=500.0, jitter_ms=0.0)
        with pytest.raises(CloudUnavailable) as caught:
            await call_with_timeout(link, *sample(0.1), ddnn_version="1", timeout_s=0.02)
        await cloud.close()
        return caught.value

    error = asyncio.run(run())
    assert error.kind == "timeout" and "20 ms" in error.reason


def _remote(handler: httpx.MockTransport) -> RemoteCloud:
    return RemoteCloud(
        "http://cloud",
        timeout_s=1.0,
        retry_after_s=60.0,
        max_batch=8,
        max_wait_s=0.0,
        binary=False,
        client=httpx.AsyncClient(transport=handler),
    )


def test_remote_cloud_posts_z_and_version() -> None:
    seen: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        rows = len(body["z"])
        answer = {"y": [[1.0] * K] * rows, "ddnn_version": "3", "cloud_ms": 2.0, "queue_ms": 0.5}
        return httpx.Response(200, json={**answer, "batch_size": rows})

    async def run() -> float:
        answer = await _remote(httpx.MockTransport(handle)).infer(
            *sample(0.2, rows=2), ddnn_version="3"
        )
        assert answer.y.shape == (2, K)
        return answer.cloud_ms

    assert asyncio.run(run()) == pytest.approx(2.5)
    assert seen[0]["ddnn_version"] == "3"
    assert len(seen[0]["z"]) == 2 and len(seen[0]["z"][0]) == N  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "kind"), [(409, "version_mismatch"), (500, "error"), (503, "error")]
)
def test_remote_cloud_error_status_raises_and_opens_circuit(status: int, kind: str) -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json={"error": "x", "message": "cloud says no"})

    async def run() -> tuple[CloudUnavailable, CloudUnavailable]:
        remote = _remote(httpx.MockTransport(handle))
        errors = []
        for _ in range(2):
            with pytest.raises(CloudUnavailable) as caught:
                await remote.infer(*sample(0.2), ddnn_version="1")
            errors.append(caught.value)
        return errors[0], errors[1]

    first, second = asyncio.run(run())
    assert first.kind == kind and "cloud says no" in first.reason
    assert second.kind == "circuit_open" and len(calls) == 1  # not called again while open


def test_remote_cloud_malformed_answer_raises() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"y": [[1.0]]})

    async def run() -> None:
        await _remote(httpx.MockTransport(handle)).infer(*sample(0.2, rows=2), ddnn_version="1")

    with pytest.raises(CloudUnavailable, match="malformed|returned shape"):
        asyncio.run(run())


def test_submit_announced_alone_runs_without_waiting() -> None:
    async def run() -> float:
        batcher = DynamicBatcher(Recorder(), max_batch=64, max_wait_s=1.0)
        loop = asyncio.get_running_loop()
        token = batcher.expect(loop.time())
        started = time.perf_counter()
        await batcher.submit(*sample(1), token=token)
        return time.perf_counter() - started

    assert asyncio.run(run()) < 0.5  # the 1 s wait bound applies only when others are due


def test_submit_waits_for_announced_arrival_within_bound() -> None:
    async def run() -> list[int]:
        runner = Recorder()
        batcher = DynamicBatcher(runner, max_batch=64, max_wait_s=0.5)
        loop = asyncio.get_running_loop()
        first, second = batcher.expect(loop.time()), batcher.expect(loop.time() + 0.05)

        async def late() -> None:
            await asyncio.sleep(0.05)
            await batcher.submit(*sample(2), token=second)

        await asyncio.gather(batcher.submit(*sample(1), token=first), late())
        return runner.sizes

    assert asyncio.run(run()) == [2]
