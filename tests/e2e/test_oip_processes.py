"""End to end, real processes on loopback: tritonclient (the Open Inference Protocol's standard
client, not ours) drives /v2 and gets /v1's answers; and a 64-client remote load rides through
the cloud process being killed and restarted without a failed request."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from registry import DDNN_MODEL_NAME
from tests.e2e.stack import Process, clean_env, free_port
from tests.factories import demand_payload
from tests.service.conftest import K, N, Store, build_store

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def oip_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.mktemp("oip-registry"))


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


def serve(
    processes: list[Process], tmp_path: Path, name: str, port: int, store: Store, **env: str
) -> Process:
    settings = {
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PORT": str(port),
        "DDNN_TRACKING_URI": store.uri,
        "DDNN_LOG_LEVEL": "warning",
        "DDNN_ACCESS_LOG": "false",
        **env,
    }
    process = Process([sys.executable, "-m", "service"], clean_env(**settings), tmp_path, name)
    processes.append(process)
    process.wait_http(f"http://127.0.0.1:{port}/readyz")
    return process


def windows(count: int) -> np.ndarray:
    return np.asarray([demand_payload(N, K, seed=s) for s in range(count)], dtype=np.float32)


def v1_batch(port: int, batch: np.ndarray, **knobs: object) -> list[dict[str, object]]:
    body = {"windows": batch.tolist(), **knobs}
    response = httpx.post(f"http://127.0.0.1:{port}/v1/allocations/batch", json=body, timeout=30)
    assert response.status_code == 200, response.text
    results: list[dict[str, object]] = response.json()["results"]
    return results


def triton_infer(
    client: triton.InferenceServerClient,
    batch: np.ndarray,
    *,
    binary: bool,
    version: str = "",
    **parameters: object,
) -> triton.InferResult:
    tensor = np.ascontiguousarray(batch.transpose(0, 2, 1))  # (B, K, N) -> [B, N, K]
    demand = triton.InferInput("demand", list(tensor.shape), "FP32")
    demand.set_data_from_numpy(tensor, binary_data=binary)
    outputs = None
    if not binary:  # ask for JSON outputs too
        outputs = [
            triton.InferRequestedOutput(n, binary_data=False)
            for n in ("allocation", "decision", "exit", "score")
        ]
    return client.infer(
        DDNN_MODEL_NAME, [demand], model_version=version, outputs=outputs, parameters=parameters
    )


def texts(result: triton.InferResult, name: str) -> list[str]:
    """A BYTES output as strings (bytes when it came binary, str when it came as JSON)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy(name).tolist()]


def test_tritonclient_gets_v1_answers_from_v2(
    processes: list[Process], tmp_path: Path, oip_store: Store
) -> None:
    port = free_port()
    serve(processes, tmp_path, "service", port, oip_store, DDNN_RTT_MS="5")
    client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(DDNN_MODEL_NAME)
        assert client.is_model_ready(DDNN_MODEL_NAME, "1")
        assert not client.is_model_ready("another-model")
        meta = client.get_model_metadata(DDNN_MODEL_NAME)
        assert meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "demand", "datatype": "FP32", "shape": [-1, N, K]}]
        assert {o["name"] for o in meta["outputs"]} == {"allocation", "decision", "exit", "score"}

        batch = windows(6)
        for policy, binary in (("ml", True), ("cost_aware", False), ("remote", True)):
            result = triton_infer(
                client, batch, binary=binary, policy=policy, transmission_cost=0.1
            )
            expected = v1_batch(port, batch, policy=policy, transmission_cost=0.1)
            np.testing.assert_allclose(
                result.as_numpy("allocation"), [r["allocation"] for r in expected], rtol=1e-5
            )
            assert texts(result, "decision") == [r["decision"] for r in expected]
            assert texts(result, "exit") == [r["exit"] for r in expected]
            assert result.get_response()["parameters"]["policy"] == policy

        versioned = triton_infer(client, batch[:1], binary=True, version="1", policy="local")
        assert texts(versioned, "exit") == ["local"]
        with pytest.raises(InferenceServerException) as missing:
            triton_infer(client, batch[:1], binary=True, version="9")
        assert missing.value.status() == "404" and "loaded: 1" in missing.value.message()
        with pytest.raises(InferenceServerException) as bad:
            triton_infer(client, batch[:1], binary=True, policy="nope")
        assert bad.value.status() == "400"
    finally:
        client.close()


# ---- the cloud process dies and comes back under load ---------------------------------------

CLIENTS = 64
RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class Answer:
    sent: float  # monotonic time the request was sent
    at: float  # monotonic time the answer arrived
    status: int
    exit: str | None
    fallback: str | None


async def remote_load(port: int, stop: asyncio.Event, answers: list[Answer]) -> None:
    """CLIENTS connections sending policy=remote requests back to back until `stop`."""
    body = {"demand": demand_payload(N, K), "policy": "remote"}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=20.0
    ) as client:

        async def worker() -> None:
            while not stop.is_set():
                sent = time.monotonic()
                response = await client.post("/v1/allocations", json=body)
                data = response.json() if response.status_code == 200 else {}
                rationale = data.get("rationale") or {}
                answers.append(
                    Answer(
                        sent,
                        time.monotonic(),
                        response.status_code,
                        data.get("exit"),
                        rationale.get("fallback"),
                    )
                )

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))


async def until(answers: list[Answer], predicate: object, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if any(predicate(a) for a in answers):  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no such answer within {deadline_s} s")


def test_remote_load_rides_through_cloud_kill_and_restart(
    processes: list[Process], tmp_path: Path, oip_store: Store
) -> None:
    cloud_port, edge_port = free_port(), free_port()
    cloud = serve(processes, tmp_path, "cloud", cloud_port, oip_store, DDNN_ROLE="cloud")
    serve(
        processes,
        tmp_path,
        "edge",
        edge_port,
        oip_store,
        DDNN_ROLE="edge",
        DDNN_CLOUD_URL=f"http://127.0.0.1:{cloud_port}",
        DDNN_CLOUD_TIMEOUT_S="2",
        DDNN_CLOUD_RETRY_AFTER_S=str(RETRY_AFTER_S),
    )
    answers: list[Answer] = []
    marks: dict[str, float] = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        load = asyncio.create_task(remote_load(edge_port, stop, answers))
        try:
            await until(answers, lambda a: a.exit == "remote", 30)
            await asyncio.sleep(1.0)
            marks["killed"] = time.monotonic()
            await asyncio.to_thread(cloud.kill)
            await until(answers, lambda a: a.at > marks["killed"] + 0.5, 30)
            await asyncio.sleep(1.0)
            marks["restarting"] = time.monotonic()  # from here the cloud may answer again
            await asyncio.to_thread(cloud.restart)
            await asyncio.to_thread(cloud.wait_http, f"http://127.0.0.1:{cloud_port}/readyz")
            marks["back"] = time.monotonic()
            await until(answers, lambda a: a.exit == "remote" and a.at > marks["back"], 10)
            marks["resumed"] = min(
                a.at for a in answers if a.exit == "remote" and a.at > marks["back"]
            )
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await load

    asyncio.run(scenario())
    assert [a for a in answers if a.status != 200] == []  # not one request failed
    # down: sent once the cloud was surely dead, answered before it could be back (an answer
    # the cloud gave just before the kill may arrive later on a loaded machine)
    down = [a for a in answers if a.sent > marks["killed"] + 0.5 and a.at < marks["restarting"]]
    assert down and all(a.exit == "local" and a.fallback for a in down)  # local, and says why
    # once the cloud answers again, the breaker lets requests through within its retry delay
    assert marks["resumed"] - marks["back"] <= RETRY_AFTER_S + 1.0, marks
