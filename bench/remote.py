"""Remote decisions at 64 concurrent clients with the paper's 42.46 ms RTT, in several setups:
the cloud in-process behind a simulated round trip (asyncio.sleep), or a cloud-role process
behind a TCP proxy that delays each direction by half the RTT (bench/delay_proxy.py); float32,
int8 or bfloat16 cloud; one or two torch threads for the cloud; one service process or two
(replicas); paper-size or `make run`'s model.

Every setup is measured in `rounds` interleaved rounds (round 1 runs each setup once, then
round 2, ...): on a shared 2-core machine the same setup's rate moves by tens of percent from
one minute to the next, so a lever's A/B (`AB`) is a ratio paired by round, with its interval."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clients import http_request, raw_async  # noqa: E402
from fixtures import child_env, free_port, process  # noqa: E402

from ddnn.config import PAPER_RTT_MS  # noqa: E402
from ddnn.policies import REMOTE  # noqa: E402
from studies.ablation.report import T_975  # noqa: E402

log = logging.getLogger("bench")
CLIENTS = 64


@dataclass(frozen=True)
class Setup:
    label: str
    size: str  # "paper" or "small" (`make run`'s model)
    cloud: str  # "simulated" (in-process) or "process" (a cloud-role process behind the proxy)
    precision: str = "float32"
    cloud_threads: int = 1
    coalesce: bool = False  # DDNN_EDGE_COALESCE (the service's default: off)
    gc_freeze: bool = True  # DDNN_GC_FREEZE (the service's default: on)
    batch_wait_ms: float = 0.0  # DDNN_CLOUD_BATCH_WAIT_MS (the service's default: 0)
    # service processes on the box, the clients split evenly between them: a Deployment's
    # replicas behind its Service (each with its own in-process cloud, or all with one cloud)
    replicas: int = 1


SETUPS = (
    Setup("paper, cloud in-process (simulated RTT)", "paper", "simulated"),
    Setup("paper, cloud in-process, int8", "paper", "simulated", "int8"),
    Setup("paper, cloud in-process, bfloat16", "paper", "simulated", "bfloat16"),
    Setup("paper, cloud in-process, edge coalescing on", "paper", "simulated", coalesce=True),
    Setup("paper, cloud process behind the RTT proxy", "paper", "process"),
    Setup("paper, cloud process, 2 torch threads", "paper", "process", cloud_threads=2),
    Setup("paper, cloud process, int8", "paper", "process", "int8"),
    Setup("paper, cloud process, bfloat16", "paper", "process", "bfloat16"),
    Setup("make run model, cloud in-process (simulated RTT)", "small", "simulated"),
    Setup("make run model, cloud in-process, bfloat16", "small", "simulated", "bfloat16"),
    Setup(
        "make run model, cloud in-process, edge coalescing on",
        "small",
        "simulated",
        coalesce=True,
    ),
    Setup(
        "make run model, cloud in-process, cloud batch wait 5 ms (the former default)",
        "small",
        "simulated",
        batch_wait_ms=5.0,
    ),
    Setup(
        "make run model, cloud in-process, collector not frozen",
        "small",
        "simulated",
        gc_freeze=False,
    ),
    Setup("make run model, cloud process behind the RTT proxy", "small", "process"),
    Setup("make run model, 2 replicas, cloud in-process", "small", "simulated", replicas=2),
    Setup(
        "paper, 2 replicas, cloud in-process, bfloat16",
        "paper",
        "simulated",
        "bfloat16",
        replicas=2,
    ),
)
BASELINE = "make run model, cloud in-process (simulated RTT)"
PAPER_BASELINE = "paper, cloud in-process (simulated RTT)"
# an operator's choices: the cloud's precision (answers move a little: bench/quantization.py)
# and replicas on the box; each pair is an A/B whose other arm keeps a target row of its own
CHOICE_AB = (
    (PAPER_BASELINE, "paper, cloud in-process, int8"),
    (PAPER_BASELINE, "paper, cloud in-process, bfloat16"),
    (BASELINE, "make run model, cloud in-process, bfloat16"),
    (BASELINE, "make run model, 2 replicas, cloud in-process"),
    ("paper, cloud in-process, bfloat16", "paper, 2 replicas, cloud in-process, bfloat16"),
)
# each lever's A/B: (the service's default, the other setting), measured in the same rounds
AB = (
    *CHOICE_AB,
    (PAPER_BASELINE, "paper, cloud in-process, edge coalescing on"),
    (BASELINE, "make run model, cloud in-process, edge coalescing on"),
    (BASELINE, "make run model, cloud in-process, cloud batch wait 5 ms (the former default)"),
    (BASELINE, "make run model, cloud in-process, collector not frozen"),
)
# a setting the service does not default to and no operator would choose for speed: no target
OTHER_ARMS = frozenset(other for _, other in AB) - {other for _, other in CHOICE_AB}


def service_env(port: int, uri: str, **extra: str) -> dict[str, str]:
    return child_env(
        PORT=str(port),
        DDNN_TRACKING_URI=uri,
        DDNN_LOG_LEVEL="warning",
        DDNN_ACCESS_LOG="false",
        DDNN_TORCH_THREADS="1",
        **extra,
    )


@contextmanager
def serving(setup: Setup, uri: str, root: Path) -> Iterator[tuple[list[int], list[int]]]:
    """The setup's processes; yields the ports to send allocations to (one per replica) and
    the pids of the service's processes (edges, and cloud when apart; not the proxy)."""
    service = [sys.executable, "-m", "service"]
    tuning = {
        "DDNN_CLOUD_PRECISION": setup.precision,
        "DDNN_EDGE_COALESCE": str(setup.coalesce).lower(),
        "DDNN_GC_FREEZE": str(setup.gc_freeze).lower(),
        "DDNN_CLOUD_BATCH_WAIT_MS": str(setup.batch_wait_ms),
    }
    name = setup.label.replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")
    with ExitStack() as stack:
        pids: list[int] = []
        if setup.cloud == "simulated":
            edge_env = {"DDNN_RTT_MS": str(PAPER_RTT_MS), **tuning}
        else:
            cloud_port, proxy_port = free_port(), free_port()
            cloud_env = service_env(cloud_port, uri, DDNN_ROLE="cloud", **tuning)
            cloud_env.update(
                DDNN_TORCH_THREADS=str(setup.cloud_threads),
                OMP_NUM_THREADS=str(setup.cloud_threads),
            )
            url = f"http://127.0.0.1:{cloud_port}/readyz"
            cloud = stack.enter_context(
                process(service, cloud_env, root / f"{name}-cloud.log", url)
            )
            pids.append(cloud.pid)
            proxy = [sys.executable, str(REPO / "bench" / "delay_proxy.py"), "--listen",
                     str(proxy_port), "--target", str(cloud_port), "--delay-ms",
                     str(PAPER_RTT_MS / 2)]  # fmt: skip
            url = f"http://127.0.0.1:{proxy_port}/readyz"
            stack.enter_context(process(proxy, child_env(), root / f"{name}-proxy.log", url))
            edge_env = {"DDNN_ROLE": "edge", "DDNN_CLOUD_URL": f"http://127.0.0.1:{proxy_port}"}
        ports = [free_port() for _ in range(setup.replicas)]
        for i, port in enumerate(ports):
            env = service_env(port, uri, **edge_env)
            url = f"http://127.0.0.1:{port}/readyz"
            edge = stack.enter_context(process(service, env, root / f"{name}-edge{i}.log", url))
            pids.append(edge.pid)
        yield ports, pids


async def remote_load(
    ports: list[int], windows: np.ndarray, clients: int, seconds: float
) -> dict[str, Any]:
    """`clients` connections, each sending policy=remote requests back to back; client i
    connects to ports[i % len(ports)]."""
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
    served = 0  # every answer, the warm-up's too (for the CPU per answer)
    statuses: dict[int, int] = defaultdict(int)

    async def worker(i: int, until: float, record: bool) -> None:
        nonlocal served
        request = requests[i]
        reader, writer = await asyncio.open_connection("127.0.0.1", ports[i % len(ports)])
        try:
            while time.perf_counter() < until:
                started = time.perf_counter()
                status, answer = await raw_async(reader, writer, request)
                served += 1
                if record:
                    latencies.append((time.perf_counter() - started) * 1e3)
                    statuses[status] += 1
                    if status == 200:
                        answers.append(answer)
        finally:
            writer.close()

    await asyncio.gather(*(worker(i, time.perf_counter() + 2.0, False) for i in range(clients)))
    started = time.perf_counter()
    await asyncio.gather(*(worker(i, started + seconds, True) for i in range(clients)))
    elapsed = time.perf_counter() - started
    parsed = [json.loads(a) for a in answers]
    exits: dict[str, int] = defaultdict(int)
    for answer in parsed:
        exits[answer["exit"]] += 1
    stage = {
        k: statistics.median(a["latency_ms"][k] for a in parsed) for k in parsed[0]["latency_ms"]
    }
    return {
        # remote decisions: answers the cloud gave (a local fallback is not a remote decision)
        "rate": exits.get("remote", 0) / elapsed,
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
        "n": len(parsed),
        "exits": dict(exits),
        "errors": sum(n for s, n in statuses.items() if s != 200),
        "stages": stage,
        "served": served,
    }


def measure_setups(
    setups: tuple[Setup, ...],
    uris: dict[str, str],
    windows: np.ndarray,
    seconds: float,
    root: Path,
    rounds: int,
) -> list[tuple[Setup, list[dict[str, Any]]]]:
    """Each setup's measures, one per round; the rounds interleave the setups."""
    runs: dict[Setup, list[dict[str, Any]]] = {setup: [] for setup in setups}
    for round_ in range(rounds):
        for setup in setups:
            log.info("remote load, round %d of %d: %s", round_ + 1, rounds, setup.label)
            with serving(setup, uris[setup.size], root) as (ports, pids):
                before = _cpu_seconds(pids)
                measured = asyncio.run(remote_load(ports, windows, CLIENTS, seconds))
                # the warm-up's answers and CPU both counted
                measured["cpu_ms"] = (_cpu_seconds(pids) - before) / measured["served"] * 1e3
                runs[setup].append(measured)
    return list(runs.items())


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose rate is the median (the lower middle one for an even count)."""
    rate = statistics.median_low(float(r["rate"]) for r in runs)
    return next(r for r in runs if float(r["rate"]) == rate)


def paired_ratio(
    default: list[dict[str, Any]], other: list[dict[str, Any]], key: str = "rate"
) -> dict[str, Any]:
    """other / default of a measure (remote rate, cpu_ms), round by round: the geometric mean
    and a 95 % t-interval (on the log ratios; None with a single round)."""
    logs = np.log([o[key] / d[key] for d, o in zip(default, other, strict=True)])
    mean = float(logs.mean())
    interval = None
    if logs.size > 1:
        t = T_975.get(logs.size - 1, 1.96)
        half = float(t * logs.std(ddof=1) / np.sqrt(logs.size))
        interval = (float(np.exp(mean - half)), float(np.exp(mean + half)))
    return {"ratio": float(np.exp(mean)), "ci": interval, "each": np.exp(logs).tolist()}
