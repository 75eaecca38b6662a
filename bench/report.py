"""bench/results.md: the command, date, machine and load, then every measure and the issue's
targets (met or not), from one run of bench/service_latency.py."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from measures import LOCAL_ROW, WARM_ML, HttpxP50, Row  # noqa: E402
from quantization import report_lines as quantization_lines  # noqa: E402
from remote import AB, CLIENTS, OTHER_ARMS, median_run, paired_ratio  # noqa: E402

from ddnn.config import PAPER_RTT_MS  # noqa: E402
from ddnn.policies import COST_AWARE, ML, REMOTE  # noqa: E402

RTT_LIMIT = CLIENTS / (PAPER_RTT_MS / 1e3)  # 64 clients, one round trip each at a time


def report(results: dict[str, Any], command: str) -> str:
    return "\n".join(
        [
            *_header(results, command),
            *_single(results),
            *_httpx(results["httpx"]),
            *_targets(results),
            *_remote(results["remote"]),
            *_batch_notes(results),
            *(quantization_lines(*results["quantization"]) if results.get("quantization") else []),
            "",
        ]
    )


def _header(results: dict[str, Any], command: str) -> list[str]:
    return [
        "# Service latency benchmark",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{results['seconds']:.0f} s).",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}, {_cpu()}), load average "
        f"{results['load']:.1f} at the start and {results['load_end']:.1f} at the end (other "
        f"work shares the cores: {results['others']}), torch {torch.__version__}, Python "
        f"{platform.python_version()}. Client and servers on the same cores. Models at paper "
        "size (N=144, K=16) unless said otherwise, untrained and seeded; one uvicorn worker "
        f"(httptools + uvloop) and one torch thread per server; RTT {PAPER_RTT_MS} ms. Client: a "
        "minimal keep-alive HTTP/1.1 client on raw sockets (the same for every server), except "
        "where httpx is named.",
        "",
    ]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _single(results: dict[str, Any]) -> list[str]:
    rows: list[Row] = results["rows"]
    peer: Row = results["peer"]
    lines = [
        "## Single requests of one (K=16, N=144) window, real HTTP on loopback (raw client)",
        "",
        "| request | n | p50 ms | p99 ms | p50 vs mlflow models serve |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        ratio = peer.p50_ms / row.p50_ms
        word = f"{ratio:.2f}x lower" if ratio >= 1 else f"{1 / ratio:.2f}x higher"
        lines.append(f"| {row.what} | {row.n} | {row.p50_ms:.2f} | {row.p99_ms:.2f} | {word} |")
    lines += [
        f"| {peer.what} | {peer.n} | {peer.p50_ms:.2f} | {peer.p99_ms:.2f} | 1x |",
        "",
        f"Remote answers include the {PAPER_RTT_MS} ms simulated round trip, so they are slower "
        "than the peer by design; the peer has no cloud exit to compare with. Our local exit and "
        f"the peer's answer agree to {results['parity']:.1e} (relative).",
        "",
    ]
    return lines


def _httpx(p50: HttpxP50) -> list[str]:
    return [
        "## Local decision through httpx (a standard client), same run",
        "",
        f"{p50.n} rounds of one request each, round-robin on one keep-alive `httpx.Client` per "
        "server: our `/healthz` (the HTTP floor of the same server), our `local` decision, and "
        "`mlflow models serve` of the same edge model.",
        "",
        "| request | p50 ms |",
        "| --- | ---: |",
        f"| our GET /healthz | {p50.healthz:.3f} |",
        f"| our POST /v1/allocations, local | {p50.ours:.3f} |",
        f"| mlflow models serve POST /invocations | {p50.peer:.3f} |",
        "",
    ]


def _targets(results: dict[str, Any]) -> list[str]:
    rows: list[Row] = results["rows"]
    local = next(r for r in rows if r.what == LOCAL_ROW)
    p50: HttpxP50 = results["httpx"]
    b64, ml, lists = results["batch_b64"], results["batch_ml"], results["batch_json"]
    decision = results["decision_us"]
    remote = [
        _target(
            f"{REMOTE.name} decisions at {CLIENTS} clients, RTT {PAPER_RTT_MS} ms: {setup.label}"
            f" (median of {len(runs)} rounds)",
            median_run(runs)["rate"],
            "/s",
            1000.0,
            True,
        )
        for setup, runs in results["remote"]
        if setup.label not in OTHER_ARMS  # an A/B's other arm is not the service's default
    ]
    return [
        "## Targets",
        "",
        "| measure | value | target | met |",
        "| --- | ---: | ---: | :---: |",
        _target("local decision p50 (httpx): mlflow models serve / ours", p50.peer / p50.ours,
                "x", 2.0, True),
        _target("local decision p50 (httpx): ours / our /healthz", p50.ours / p50.healthz, "x",
                2.0, False),
        _target("local decision p50 (raw client): mlflow models serve / ours",
                results["peer"].p50_ms / local.p50_ms, "x", 3.0, True),
        _target(f"ML offloading decision in-process ({ML.name} policy), batch 1 (per sample)",
                results["ml_us_1"], "us", 50.0, False),
        _target(f"ML offloading decision in-process ({ML.name} policy), batch 1024 (per sample)",
                results["ml_us_1024"], "us", 50.0, False),
        _target("ML decision inside the service (latency_ms.decision p50), back to back",
                decision.get(WARM_ML, float("nan")), "us", 50.0, False),
        _target(f"batch endpoint, 1024 windows (base64), {COST_AWARE.name} all local",
                b64.rate, "/s", 20000.0, True),
        _target(f"batch endpoint, 256 windows (JSON lists), {COST_AWARE.name} all local",
                lists.rate, "/s", 20000.0, True),
        _target(f"batch endpoint, 1024 windows (base64), {ML.name}: "
                f"{1 - ml.share_decided_local:.0%} sent to the cloud", ml.rate, "/s", 20000.0,
                True),
        *remote,
        "",
    ]  # fmt: skip


def _remote(measured: list[tuple[Any, list[dict[str, Any]]]]) -> list[str]:
    rounds = len(measured[0][1]) if measured else 0
    lines = [
        f"## Remote decisions at {CLIENTS} concurrent clients, RTT {PAPER_RTT_MS} ms",
        "",
        f"The round-trip limit is {CLIENTS} / {PAPER_RTT_MS} ms = {RTT_LIMIT:,.0f}/s; the goal "
        f"(1,000/s) is {1000 / RTT_LIMIT:.0%} of it. `simulated`: the cloud half in the "
        "service's process behind an awaited round trip; `process`: a cloud-role process "
        "(`DDNN_ROLE=cloud`) reached through a TCP proxy that delays each direction by half the "
        "RTT (bench/delay_proxy.py), the edge calling it with `DDNN_CLOUD_URL`; `2 replicas`: "
        "two service processes on the same cores, the clients split evenly between them (what "
        "a Deployment's replicas behind its Service do). Remote/s counts "
        "answers from the cloud (a local fallback is not a remote decision). Each setup ran "
        f"{rounds} times, in interleaved rounds: remote/s is the median round's (every round's "
        "in brackets), and the latencies and stages are that round's. CPU ms per answer: the "
        "service's processes (edges, and cloud when apart), all their threads, per answer (the "
        "median over rounds).",
        "",
        "| setup | remote/s | of the limit | p50 ms | p99 ms | CPU ms per answer | exits | "
        "errors | server stages (median ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for setup, runs in measured:
        r = median_run(runs)
        each = ", ".join(f"{run['rate']:,.0f}" for run in runs)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())
        cpu = statistics.median_low(run["cpu_ms"] for run in runs)
        lines.append(
            f"| {setup.label} | {r['rate']:,.0f} [{each}] | {r['rate'] / RTT_LIMIT:.0%} | "
            f"{r['p50']:.1f} | {r['p99']:.1f} | {cpu:.2f} | {r['exits']} | {r['errors']} | "
            f"{stages} |"
        )
    return [*lines, "", *_levers(measured)]


def _levers(measured: list[tuple[Any, list[dict[str, Any]]]]) -> list[str]:
    """Each A/B: the other setting's rate over its reference's, paired by round."""
    by_label = {setup.label: runs for setup, runs in measured}
    rows = [(a, b) for a, b in AB if a in by_label and b in by_label]
    if not rows:
        return []
    lines = [
        "Levers and an operator's choices (the cloud's precision, replicas), each against its "
        "reference in the same rounds (the service's default, or the setup it changes): other / "
        "reference, paired by round (geometric mean over rounds, 95 % t-interval on the log "
        "ratios; each round's ratio after it):",
        "",
        "| reference | other setting | remote/s ratio | CPU ms per answer ratio |",
        "| --- | --- | --- | --- |",
    ]
    for default, other in rows:
        cells = [
            _ratio(paired_ratio(by_label[default], by_label[other], key))
            for key in ("rate", "cpu_ms")
        ]
        lines.append(f"| {default} | {other} | {cells[0]} | {cells[1]} |")
    return [*lines, ""]


def _ratio(ab: dict[str, Any]) -> str:
    ci = f" [{ab['ci'][0]:.2f}, {ab['ci'][1]:.2f}]" if ab["ci"] else ""
    return f"{ab['ratio']:.2f}{ci} ({', '.join(f'{x:.2f}' for x in ab['each'])})"


def _batch_notes(results: dict[str, Any]) -> list[str]:
    b64, ml, lists = results["batch_b64"], results["batch_ml"], results["batch_json"]
    short = results["batch_json_short"]
    return [
        "## Batch endpoint",
        "",
        f"Batch requests take {b64.ms:.1f} ms (1024 windows, base64), {lists.ms:.1f} ms (256 "
        f"windows, JSON lists of float32 values printed in full, ~19 bytes a number: "
        f"{lists.rate:,.0f}/s), {short.ms:.1f} ms (the same 256 windows with 2 decimals: "
        f"{short.rate:,.0f}/s) and {ml.ms:.1f} ms (1024, {ML.name}; {ml.share_local:.0%} "
        "answered by the local exit, fallbacks included).",
        "",
        "Where a 256-window JSON request's time goes, in-process (the service's own functions on "
        "the same body, no HTTP; ms, median of 5). At 20,000 decisions/s the whole request may "
        "take 12.8 ms:",
        "",
        "| step | ms |",
        "| --- | ---: |",
        *(f"| {step} | {ms:.2f} |" for step, ms in results["breakdown"].items()),
        "",
    ]


def _target(name: str, value: float, unit: str, target: float, higher: bool) -> str:
    met = value >= target if higher else value <= target
    bound = f"{'>=' if higher else '<='} {target:,.0f} {unit}".replace(" x", "x")
    shown = f"{value:.2f}x" if unit == "x" else f"{value:,.1f} {unit}"
    return f"| {name} | {shown} | {bound} | {'yes' if met else 'no'} |"
