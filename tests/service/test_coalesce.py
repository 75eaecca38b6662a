"""Edge-pass coalescing (service.coalesce, DDNN_EDGE_COALESCE): concurrent small requests share
one edge pass, and each gets exactly what it would have got alone (every policy, including the
random draws and the confidence policy's MC dropout, which stay in request order)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from ddnn.policies import COST_AWARE, ONLINE_POLICY_NAMES, PolicyOverrides
from service.allocation import INLINE_ROWS, Prediction, coalescer_for, predict
from service.cloud import SimulatedLink
from service.coalesce import EdgeCoalescer
from service.main import create_app
from service.pair import PolicyOptions, ServingPair
from tests.factories import demand_payload
from tests.service.conftest import K, N, fake_loader, make_serving_pair, make_settings

pytestmark = pytest.mark.unit


def windows_of(count: int) -> list[np.ndarray]:
    """Single-request windows (1, K, N), each different."""
    return [np.asarray([demand_payload(N, K, seed=s)], dtype=np.float64) for s in range(count)]


def concurrent_predictions(
    pair: ServingPair, windows: list[np.ndarray], policy: str
) -> list[Prediction]:
    """One request per window, all at once; the policy's randomness seeded the same each run."""
    torch.manual_seed(7)  # the confidence policy's MC dropout
    options = PolicyOptions(
        default_policy=COST_AWARE, overrides=PolicyOverrides(), rng=np.random.default_rng(3)
    )
    link = SimulatedLink(pair.cloud, rtt_ms=0.0, jitter_ms=0.0)

    async def one(w: np.ndarray) -> Prediction:
        return await predict(
            pair=pair,
            link=link,
            windows=w,
            policy=policy,
            requested_cost=0.7,
            options=options,
            cloud_timeout_s=5.0,
            started=time.perf_counter(),
        )

    async def run() -> list[Prediction]:
        try:
            return list(await asyncio.gather(*(one(w) for w in windows)))
        finally:
            await pair.close()

    return asyncio.run(run())


@pytest.mark.parametrize("policy", ONLINE_POLICY_NAMES)
def test_coalesced_answers_equal_one_pass_per_request(policy: str) -> None:
    windows = windows_of(12)
    alone = concurrent_predictions(make_serving_pair(), windows, policy)
    pair, passes = make_serving_pair(), []
    pair.coalescer = coalescer_for(pair, on_pass=passes.append)
    together = concurrent_predictions(pair, windows, policy)
    assert passes == [12]  # one pass for all: the comparison below is not vacuous
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a.step.decision.local, b.step.decision.local)
        np.testing.assert_array_equal(a.exit_local, b.exit_local)
        np.testing.assert_allclose(a.step.decision.score, b.step.decision.score, rtol=1e-5)
        np.testing.assert_allclose(a.allocation, b.allocation, rtol=1e-5, atol=1e-6)
        assert a.step.y_local.shape == b.step.y_local.shape == (1, K)
        assert a.step.z.shape == b.step.z.shape


def test_requests_ready_together_share_passes_of_at_most_inline_rows() -> None:
    pair, passes = make_serving_pair(), []
    pair.coalescer = coalescer_for(pair, on_pass=passes.append)
    concurrent_predictions(pair, windows_of(INLINE_ROWS + 8), "local")
    assert passes == [INLINE_ROWS, 8]


def test_a_request_alone_in_its_loop_iteration_gets_a_pass_of_its_own() -> None:
    pair, passes = make_serving_pair(), []
    pair.coalescer = coalescer_for(pair, on_pass=passes.append)
    for w in windows_of(3):
        concurrent_predictions(pair, [w], "local")
    assert passes == [1, 1, 1]


def test_an_idle_service_runs_a_pass_at_once_without_yielding() -> None:
    ran: list[str] = []
    coalescer = EdgeCoalescer(
        lambda w: ran.append("pass") or 0, max_rows=8, busy=lambda: False, on_pass=ran.append
    )

    async def run() -> tuple[tuple[int, slice], list[str]]:
        asyncio.get_running_loop().call_soon(ran.append, "next loop iteration")
        return await coalescer.submit(np.zeros((2, K, N))), list(ran)

    answer, seen = asyncio.run(run())
    assert answer == (0, slice(0, 2))
    assert seen == ["pass"]  # the loop did not run in between; a pass alone is not reported


def test_a_busy_service_lets_the_requests_of_the_iteration_join() -> None:
    sizes: list[int] = []
    coalescer = EdgeCoalescer(lambda w: 0, max_rows=8, busy=lambda: True, on_pass=sizes.append)

    async def run() -> None:
        await asyncio.gather(*(coalescer.submit(np.zeros((1, K, N))) for _ in range(5)))

    asyncio.run(run())
    assert sizes == [5]


def test_a_failed_pass_fails_each_of_its_requests() -> None:
    def failing(windows: np.ndarray) -> int:
        raise RuntimeError("edge down")

    coalescer: EdgeCoalescer[int] = EdgeCoalescer(failing, max_rows=8)

    async def run() -> list[BaseException | tuple[int, slice]]:
        submits = (coalescer.submit(np.zeros((1, K, N))) for _ in range(3))
        return list(await asyncio.gather(*submits, return_exceptions=True))

    results = asyncio.run(run())
    assert [str(r) for r in results] == ["edge down"] * 3


def test_a_caller_that_gave_up_is_left_out_of_the_pass() -> None:
    sizes: list[int] = []
    coalescer = EdgeCoalescer(lambda w: int(w.shape[0]), max_rows=8, on_pass=sizes.append)

    async def run() -> tuple[int, slice]:
        gone = asyncio.ensure_future(coalescer.submit(np.zeros((1, K, N))))
        kept = asyncio.ensure_future(coalescer.submit(np.zeros((2, K, N))))
        await asyncio.sleep(0)  # both submitted, the pass not run yet
        gone.cancel()
        return await kept

    assert asyncio.run(run()) == (2, slice(0, 2))
    assert sizes == [2]


def test_float32_and_float64_windows_go_in_separate_passes() -> None:
    sizes: list[int] = []
    coalescer = EdgeCoalescer(lambda w: str(w.dtype), max_rows=8, on_pass=sizes.append)

    async def run() -> list[tuple[str, slice]]:
        arrays = [np.zeros((1, K, N), dtype) for dtype in (np.float64, np.float64, np.float32)]
        return list(await asyncio.gather(*(coalescer.submit(a) for a in arrays)))

    assert asyncio.run(run()) == [
        ("float64", slice(0, 1)),
        ("float64", slice(1, 2)),
        ("float32", slice(0, 1)),
    ]
    assert sizes == [2, 1]


def edge_passes(metrics: str) -> tuple[int, int]:
    """(passes, windows) of ddnn_edge_batch_size."""
    found = dict(re.findall(r"^ddnn_edge_batch_size_(count|sum) (\S+)$", metrics, re.MULTILINE))
    return int(float(found["count"])), int(float(found["sum"]))


@pytest.mark.integration
def test_concurrent_http_requests_share_edge_passes() -> None:
    """Remote requests stay in progress for the round trip: the service is busy, and the
    requests ready together share a pass (the first one found nobody else in progress)."""
    settings = make_settings(rtt_ms=20.0, edge_coalesce=True)
    app = create_app(settings, loader=fake_loader(), resolver=None)
    clients = 32

    async def run() -> tuple[list[httpx.Response], str]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
                body = {"demand": demand_payload(N, K), "policy": "remote"}
                responses = await asyncio.gather(
                    *(client.post("/v1/allocations", json=body) for _ in range(clients))
                )
                return list(responses), (await client.get("/metrics")).text

    responses, metrics = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * clients
    assert len({str(r.json()["allocation"]) for r in responses}) == 1
    passes, windows = edge_passes(metrics)
    assert windows >= clients - 1  # the first found the service idle: its own pass, uncounted
    assert passes < clients / 4, f"{passes} edge passes for {clients} requests: not coalesced"


def test_edge_coalesce_gives_the_pair_a_coalescer_only_when_on(
    client_factory: Callable[..., TestClient],
) -> None:
    on = client_factory(make_settings(edge_coalesce=True))
    off = client_factory(make_settings())  # the default: off
    assert on.app.state.runtime.pair.coalescer is not None  # type: ignore[attr-defined]
    assert off.app.state.runtime.pair.coalescer is None  # type: ignore[attr-defined]
    body = {"demand": demand_payload(N, K), "policy": "local"}
    answers = [c.post("/v1/allocations", json=body).json() for c in (on, off)]
    np.testing.assert_allclose(answers[0]["allocation"], answers[1]["allocation"], rtol=1e-5)
