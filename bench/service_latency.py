"""Service latency and throughput benchmark (issue 5), through real HTTP on loopback.

Run from the repository root (about 3 minutes on 2 cores):

    .venv/bin/python bench/service_latency.py            # writes bench/results.md too

What it does, all in one run:
1. builds paper-size models (N=144, K=16; untrained, seeded: latency does not depend on the
   weights), registers the DDNN + offloader pair in a temporary SQLite MLflow store, and saves
   the same edge model as an MLflow pyfunc for the peer;
2. starts `python -m service` (uvicorn) and `mlflow models serve --env-manager local` on free
   loopback ports, one worker each, both with one torch thread;
3. measures, with one keep-alive httpx client per target: p50/p99 latency of single requests
   per policy and per exit taken; the same (1, K, N) request against the peer; batch throughput;
   remote throughput at 64 concurrent clients with the paper's 42.46 ms RTT; and, in-process,
   the ML offloading decision per sample;
4. prints a markdown table with medians, p99 and ratios, and writes it to bench/results.md.

Client and servers share the machine's cores, as they would on a small edge box.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ddnn.config import PAPER_RTT_MS  # noqa: E402
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

log = logging.getLogger("bench")

# every policy the service serves, the local one first (measured right after the warm-up)
POLICIES = (LOCAL.name, *(name for name in ONLINE_POLICY_NAMES if name != LOCAL.name))
WARM_ML = f"{ML.name}, windows it keeps local, back to back"
LOCAL_ROW = f"{LOCAL.name} -> local exit"

from clients import RawClient, http_request, raw_async  # noqa: E402
from fixtures import (  # noqa: E402
    PEAK,
    K,
    Models,
    build_models,
    child_env,
    demand_windows,
    free_port,
    process,
    register,
    save_peer,
)

# ---------------------------------------------------------------------------------------------
# measurements


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
    """The table's ml decision on (B, K, N) windows, with the bundle's knobs, in-process."""
    x = torch.from_numpy(np.ascontiguousarray(windows.transpose(0, 2, 1) / PEAK))
    evidence = Evidence(batch=len(windows), x=x, offloaders=models.offloaders)
    with torch.inference_mode():
        return evidence, ML.decide(evidence, resolve_knobs(models.defaults))


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


async def remote_load(
    port: int, windows: np.ndarray, clients: int, seconds: float
) -> dict[str, Any]:
    """`clients` connections, each sending policy=remote requests back to back."""
    requests = [
        http_request(
            "127.0.0.1",
            "/v1/allocations",
            json.dumps(
                {"demand": windows[i % len(windows)].tolist(), "policy": REMOTE.name}
            ).encode(),
        )
        for i in range(clients)
    ]
    latencies: list[float] = []
    answers: list[bytes] = []
    errors = 0

    async def worker(request: bytes, until: float, record: bool) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < until:
                started = time.perf_counter()
                status, answer = await raw_async(reader, writer, request)
                if record:
                    latencies.append((time.perf_counter() - started) * 1e3)
                    answers.append(answer) if status == 200 else None
                    errors += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(worker(r, time.perf_counter() + 2.0, False) for r in requests))
    started = time.perf_counter()
    await asyncio.gather(*(worker(r, started + seconds, True) for r in requests))
    elapsed = time.perf_counter() - started
    parsed = [json.loads(a) for a in answers]
    exits: dict[str, int] = defaultdict(int)
    for answer in parsed:
        exits[answer["exit"]] += 1
    stage = {
        k: statistics.median(a["latency_ms"][k] for a in parsed) for k in parsed[0]["latency_ms"]
    }
    return {
        "rate": len(parsed) / elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "n": len(parsed),
        "exits": dict(exits),
        "errors": errors,
        "stages": stage,
    }


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


# ---------------------------------------------------------------------------------------------
# report


def report(results: dict[str, Any], command: str) -> str:
    rows: list[Row] = results["rows"]
    peer: Row = results["peer"]
    local = next(r for r in rows if r.what == LOCAL_ROW)
    remote, decision = results["remote"], results["decision_us"]
    b64, ml, lists = results["batch_b64"], results["batch_ml"], results["batch_json"]
    lines = [
        "# Service latency benchmark",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{results['seconds']:.0f} s).",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), load average "
        f"{results['load']:.1f} at the start (other work shares the cores), torch "
        f"{torch.__version__}, Python {platform.python_version()}. Client and servers on the "
        "same cores. Models at paper size (N=144, K=16), untrained and seeded; one uvicorn "
        f"worker (h11) and one torch thread per server; RTT simulated at {PAPER_RTT_MS} ms. Client: a "
        "minimal keep-alive HTTP/1.1 client on raw sockets, the same for both servers.",
        "",
        "## Single requests of one (K=16, N=144) window, real HTTP on loopback",
        "",
        "| request | n | p50 ms | p99 ms | p50 vs mlflow models serve |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        ratio = peer.p50_ms / row.p50_ms
        word = f"{ratio:.2f}x lower" if ratio >= 1 else f"{1 / ratio:.2f}x higher"
        lines.append(f"| {row.what} | {row.n} | {row.p50_ms:.2f} | {row.p99_ms:.2f} | {word} |")
    lines.append(f"| {peer.what} | {peer.n} | {peer.p50_ms:.2f} | {peer.p99_ms:.2f} | 1x |")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in remote["stages"].items())
    lines += [
        "",
        f"Remote answers include the {PAPER_RTT_MS} ms simulated round trip, so they are slower than the "
        "peer by design; the peer has no cloud exit to compare with.",
        "",
        "## Targets",
        "",
        "| measure | value | target | met |",
        "| --- | ---: | ---: | :---: |",
        _target(
            "local decision p50, mlflow models serve p50 / ours",
            peer.p50_ms / local.p50_ms,
            "x",
            3.0,
            True,
        ),
        _target(
            f"ML offloading decision in-process ({ML.name} policy), batch 1 (per sample)",
            results["ml_us_1"],
            "us",
            50.0,
            False,
        ),
        _target(
            f"ML offloading decision in-process ({ML.name} policy), batch 1024 (per sample)",
            results["ml_us_1024"],
            "us",
            50.0,
            False,
        ),
        _target(
            "ML decision inside the service (latency_ms.decision p50), back to back",
            decision.get(WARM_ML, float("nan")),
            "us",
            50.0,
            False,
        ),
        _target(
            "ML decision inside the service (latency_ms.decision p50), mixed with remote",
            decision[ML.name],
            "us",
            50.0,
            False,
        ),
        _target(
            f"batch endpoint, 1024 windows (base64), {COST_AWARE.name} all local",
            b64.rate,
            "/s",
            20000.0,
            True,
        ),
        _target(
            f"batch endpoint, 256 windows (JSON lists), {COST_AWARE.name} all local",
            lists.rate,
            "/s",
            20000.0,
            True,
        ),
        _target(
            f"batch endpoint, 1024 windows (base64), {ML.name}: "
            f"{1 - ml.share_decided_local:.0%} sent to the cloud",
            ml.rate,
            "/s",
            20000.0,
            True,
        ),
        _target(
            f"{REMOTE.name} decisions at 64 concurrent clients, RTT {PAPER_RTT_MS} ms",
            remote["rate"],
            "/s",
            1000.0,
            True,
        ),
        "",
        f"Batch requests take {b64.ms:.1f} ms (1024 base64), {lists.ms:.1f} ms (256 lists) and "
        f"{ml.ms:.1f} ms (1024, {ML.name}; {ml.share_local:.0%} answered by the local exit, "
        "fallbacks included).",
        f"Remote at 64 clients: {remote['n']} answers, p50 {remote['p50']:.1f} ms, p99 "
        f"{remote['p99']:.1f} ms, exits {remote['exits']}, errors {remote['errors']}; server-side "
        f"median stages (ms): {stages}.",
        f"Our local exit and the peer's answer agree to {results['parity']:.1e} (relative).",
        "",
    ]
    return "\n".join(lines)


def _target(name: str, value: float, unit: str, target: float, higher: bool) -> str:
    met = value >= target if higher else value <= target
    bound = f"{'>=' if higher else '<='} {target:,.0f} {unit}".replace(" x", "x")
    shown = f"{value:.2f}x" if unit == "x" else f"{value:,.1f} {unit}"
    return f"| {name} | {shown} | {bound} | {'yes' if met else 'no'} |"


# ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    started = time.perf_counter()
    models = build_models()
    windows = demand_windows(1024, seed=2)
    results: dict[str, Any] = {
        "load": os.getloadavg()[0],
        "ml_us_1": in_process_ml_decision_us(models, windows, 1),
        "ml_us_1024": in_process_ml_decision_us(models, windows, 1024),
    }
    with tempfile.TemporaryDirectory(prefix="ddnn-bench-") as tmp:
        root = Path(tmp)
        uri = register(models, root)
        peer_model = save_peer(models, root)
        port, peer_port = free_port(), free_port()
        service_env = child_env(
            PORT=str(port),
            DDNN_TRACKING_URI=uri,
            DDNN_RTT_MS=str(PAPER_RTT_MS),
            DDNN_LOG_LEVEL="warning",
            DDNN_ACCESS_LOG="false",
            DDNN_TORCH_THREADS="1",
        )
        service = [sys.executable, "-m", "service"]
        peer = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(peer_model),
                "--env-manager", "local", "-h", "127.0.0.1", "-p", str(peer_port), "-w", "1"]  # fmt: skip
        log.info("starting the service and the peer")
        with (
            process(service, service_env, root / "service.log", f"http://127.0.0.1:{port}/readyz"),
            process(peer, child_env(), root / "peer.log", f"http://127.0.0.1:{peer_port}/ping"),
        ):
            results["parity"] = parity(port, peer_port, windows[0])
            ml_local = kept_local_by_ml(models, windows)
            results["rows"], results["decision_us"] = measure_policies(
                port, windows, args.requests, ml_local
            )
            results["peer"] = measure_peer(peer_port, windows, args.requests)
            log.info("batch throughput")
            batch = {"policy": COST_AWARE.name, "cost": 1e9}  # every window decided, all local
            results["batch_b64"] = measure_batch(
                port, windows, **batch, encoding="base64", repeats=5
            )
            results["batch_json"] = measure_batch(
                port, windows[:256], **batch, encoding="json", repeats=3
            )
            results["batch_ml"] = measure_batch(
                port, windows, policy=ML.name, cost=None, encoding="base64", repeats=3
            )
            log.info("remote throughput at 64 clients")
            results["remote"] = asyncio.run(remote_load(port, windows, 64, args.seconds))
    results["seconds"] = time.perf_counter() - started
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="single requests per policy")
    parser.add_argument("--seconds", type=float, default=10.0, help="64-client remote load window")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    command = "python bench/service_latency.py" + "".join(f" {a}" for a in sys.argv[1:])
    text = report(run(args), command)
    sys.stdout.write(text + "\n")
    args.out.write_text(text + "\n")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
