"""What the benchmark measures through real HTTP on loopback (and the ML decision in-process):
single requests per policy and exit, the peer (`mlflow models serve`), the three-way p50 through
httpx (a standard client), and batch throughput."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clients import RawClient, http_request  # noqa: E402
from fixtures import PEAK, K, Models, loaded_pair  # noqa: E402

from ddnn.policies import (  # noqa: E402
    COST_AWARE,
    LOCAL,
    ML,
    ONLINE_POLICY_NAMES,
    REMOTE,
    Decision,
    Evidence,
    resolve_knobs,
)

# every policy the service serves, the local one first (measured right after the warm-up)
POLICIES = (LOCAL.name, *(name for name in ONLINE_POLICY_NAMES if name != LOCAL.name))
WARM_ML = f"{ML.name}, windows it keeps local, back to back"
LOCAL_ROW = f"{LOCAL.name} -> local exit"
log = logging.getLogger("bench")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed_posts(
    port: int, path: str, bodies: list[bytes], warmup: int = 20
) -> tuple[list[float], list[dict[str, Any]]]:
    """Sequential POSTs on one connection; client-side latency (ms) and parsed answers."""
    client = RawClient(port)
    requests = [http_request("127.0.0.1", path, body) for body in bodies]
    try:
        for request in requests[:warmup]:
            client.send(request)
        latencies, raw = [], []
        for request in requests:
            started = time.perf_counter()
            status, answer = client.send(request)
            latencies.append((time.perf_counter() - started) * 1e3)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}: {answer[:300]!r}")
            raw.append(answer)
    finally:
        client.close()
    return latencies, [json.loads(answer) for answer in raw]


@dataclass
class Row:
    what: str
    n: int
    p50_ms: float
    p99_ms: float
    note: str = ""


def measure_policies(
    port: int, windows: np.ndarray, per_policy: int, ml_local: np.ndarray
) -> tuple[list[Row], dict[str, float]]:
    """Each policy on the same windows (rows per exit taken), plus ml on windows its classifier
    keeps local: a stream without round trips in between, so nothing idles between requests."""
    rows: list[Row] = []
    decision_us: dict[str, float] = {}
    runs = [(policy, policy, windows) for policy in POLICIES]
    if len(ml_local):
        runs.append((ML.name, WARM_ML, ml_local))
    for policy, label, chosen in runs:
        count = per_policy if policy != REMOTE.name else max(50, per_policy // 4)
        bodies = [
            json.dumps({"demand": chosen[i % len(chosen)].tolist(), "policy": policy}).encode()
            for i in range(count)
        ]
        latencies, answers = timed_posts(port, "/v1/allocations", bodies)
        decision_us[label] = statistics.median(a["latency_ms"]["decision"] for a in answers) * 1e3
        by_exit: dict[str, list[float]] = defaultdict(list)
        for latency, answer in zip(latencies, answers, strict=True):
            by_exit[answer["exit"]].append(latency)
        for exit_, values in sorted(by_exit.items()):
            rows.append(
                Row(f"{label} -> {exit_} exit", len(values), pct(values, 50), pct(values, 99))
            )
        log.info("policy %s done", label)
    return rows, decision_us


def ml_decision(models: Models, windows: np.ndarray) -> tuple[Evidence, Decision]:
    """The table's ml decision on (B, K, N) windows, with the bundle's knobs, in-process. The
    evidence has the edge, as in the service: a network that reads its output gets it on this
    first decision (Evidence.edge_output), so the timed decisions after it hold no edge pass."""
    x = torch.from_numpy(np.ascontiguousarray(windows.transpose(0, 2, 1) / PEAK))
    knobs = resolve_knobs(models.defaults)
    evidence = Evidence(
        batch=len(windows),
        x=x,
        edge=models.ddnn.edge,
        offloaders=models.offloaders,
        transmission_cost=knobs.transmission_cost,
    )
    with torch.inference_mode():
        return evidence, ML.decide(evidence, knobs)


def kept_local_by_ml(models: Models, windows: np.ndarray) -> np.ndarray:
    """The windows the (untrained) ML classifier resolves locally."""
    return windows[ml_decision(models, windows)[1].local]


def measure_peer(port: int, windows: np.ndarray, count: int) -> Row:
    bodies = [
        json.dumps({"inputs": [windows[i % len(windows)].tolist()]}).encode() for i in range(count)
    ]
    latencies, answers = timed_posts(port, "/invocations", bodies)
    assert len(answers[0]["predictions"][0]) == K
    return Row(
        "mlflow models serve, same edge model", count, pct(latencies, 50), pct(latencies, 99)
    )


def parity(port: int, peer_port: int, window: np.ndarray) -> float:
    """Max relative difference between our local exit and the peer's answer (same model)."""
    ours = json.dumps({"demand": window.tolist(), "policy": LOCAL.name}).encode()
    theirs = json.dumps({"inputs": [window.tolist()]}).encode()
    a = np.asarray(timed_posts(port, "/v1/allocations", [ours], 0)[1][0]["allocation"])
    b = np.asarray(timed_posts(peer_port, "/invocations", [theirs], 0)[1][0]["predictions"][0])
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))


@dataclass
class BatchResult:
    rate: float  # windows per second
    ms: float  # median time of one batch request
    share_local: float  # share of windows answered locally
    share_decided_local: float  # share the policy sent local


def measure_batch(
    port: int, windows: np.ndarray, *, policy: str, cost: float | None, encoding: str, repeats: int
) -> BatchResult:
    """Windows per second through POST /v1/allocations/batch (median over repeats)."""
    body: dict[str, Any] = {"policy": policy}
    if cost is not None:
        body["transmission_cost"] = cost
    if encoding == "base64":
        body["windows_base64"] = base64.b64encode(windows.astype("<f4").tobytes()).decode()
    else:
        body["windows"] = windows.tolist()
    latencies, answers = timed_posts(
        port, "/v1/allocations/batch", [json.dumps(body).encode()] * repeats, warmup=1
    )
    median = statistics.median(latencies)
    answer = answers[-1]
    decided = sum(r["decision"] == "local" for r in answer["results"]) / len(answer["results"])
    return BatchResult(len(windows) / median * 1e3, median, answer["share_local"], decided)


def in_process_ml_decision_us(models: Models, windows: np.ndarray, batch: int) -> float:
    """Median time per sample of the table's ml decision on (batch, N, K), one thread."""
    evidence, _ = ml_decision(models, windows[:batch])
    knobs = resolve_knobs(models.defaults)
    repeats = 2000 if batch == 1 else 50
    with torch.inference_mode():
        for _ in range(50):
            ML.decide(evidence, knobs)
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            ML.decide(evidence, knobs)
            samples.append(time.perf_counter() - started)
    return statistics.median(samples) / batch * 1e6


@dataclass
class HttpxP50:
    """p50 (ms) of one request each, interleaved, through httpx: the HTTP floor (our /healthz),
    our local decision, and the peer's answer for the same window."""

    n: int
    healthz: float
    ours: float
    peer: float


def httpx_p50s(port: int, peer_port: int, windows: np.ndarray, count: int) -> HttpxP50:
    """Sequential requests on one keep-alive httpx.Client per server, round-robin so that all
    three see the same moments of the machine's load."""
    ours_bodies = [
        json.dumps({"demand": w.tolist(), "policy": LOCAL.name}).encode() for w in windows
    ]
    peer_bodies = [json.dumps({"inputs": [w.tolist()]}).encode() for w in windows]
    headers = {"content-type": "application/json"}
    times: dict[str, list[float]] = defaultdict(list)
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as ours,
        httpx.Client(base_url=f"http://127.0.0.1:{peer_port}") as peer,
    ):
        calls = {
            "healthz": lambda i: ours.get("/healthz"),
            "ours": lambda i: ours.post("/v1/allocations", content=ours_bodies[i], headers=headers),
            "peer": lambda i: peer.post("/invocations", content=peer_bodies[i], headers=headers),
        }
        for i in range(count + 20):
            for name, call in calls.items():
                started = time.perf_counter()
                response = call(i % len(windows))
                elapsed = (time.perf_counter() - started) * 1e3
                if response.status_code != 200:
                    raise RuntimeError(
                        f"{name}: HTTP {response.status_code}: {response.text[:300]}"
                    )
                if i >= 20:  # the first 20 rounds warm up
                    times[name].append(elapsed)
    return HttpxP50(count, *(statistics.median(times[n]) for n in ("healthz", "ours", "peer")))


def batch_breakdown(models: Models, windows: np.ndarray, repeats: int = 5) -> dict[str, float]:
    """Where a JSON batch request's time goes, in-process (ms, medians): the service's own
    functions on the same body, without HTTP. The regular parse (pydantic + numpy) is timed
    beside the fast path the endpoint takes."""
    body = json.dumps(
        {"windows": windows.tolist(), "policy": COST_AWARE.name, "transmission_cost": 1e9}
    ).encode()
    return asyncio.run(_breakdown(loaded_pair(models), body, repeats))


async def _breakdown(loaded: Any, body: bytes, repeats: int) -> dict[str, float]:
    from service.allocation import encode_batch
    from service.config import Settings
    from service.decode import check_windows, decode_windows
    from service.fastjson import parse_batch
    from service.metrics import ServiceMetrics
    from service.runtime import ServiceRuntime
    from service.schemas import BatchAllocationRequest

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, rtt_ms=0.0, torch_threads=1, startup_load_timeout_s=60.0
    )
    runtime = ServiceRuntime(settings, ServiceMetrics(), loader=lambda s: loaded, resolver=None)
    await runtime.start()
    pair = runtime.pair
    assert pair is not None
    times: dict[str, list[float]] = defaultdict(list)
    try:
        for i in range(repeats + 1):
            marks = [time.perf_counter()]
            regular = BatchAllocationRequest.model_validate_json(body)
            decode_windows(regular.windows, None, pair, 4096)
            marks.append(time.perf_counter())
            fast = parse_batch(body, pair.n_vnfs, pair.n_steps, 4096)
            assert fast is not None
            marks.append(time.perf_counter())
            windows = check_windows(fast.windows)
            marks.append(time.perf_counter())
            prediction = await runtime.allocate(pair, windows, None, 1e9, marks[-1], batch=True)
            marks.append(time.perf_counter())
            response = encode_batch(prediction)
            marks.append(time.perf_counter())
            response.__pydantic_serializer__.to_json(response)
            marks.append(time.perf_counter())
            if i == 0:
                continue  # warm-up
            names = ("(for comparison) regular parse: pydantic + numpy", "fast parse: simdjson", "value checks",
                     "predict (edge + decision + scaling)", "encode", "serialize")  # fmt: skip
            for name, a, b in zip(names, marks[:-1], marks[1:], strict=True):
                times[name].append((b - a) * 1e3)
            times["of which edge pass"].append(prediction.step.edge_ms)
            times["of which decision"].append(prediction.step.decision_ms)
    finally:
        await runtime.stop()
    return {name: statistics.median(values) for name, values in times.items()}
