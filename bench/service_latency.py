"""Service latency and throughput benchmark (issues 5 and 11), through real HTTP on loopback.

Run from the repository root (about 15 minutes on 2 cores; `make bench`):

    .venv/bin/python bench/service_latency.py            # writes bench/results.md too

What it does, all in one run:
1. builds paper-size models (N=144, K=16; untrained, seeded: latency does not depend on the
   weights) and `make run`'s (the "small" profile's cloud), registers each DDNN + offloader pair
   in a temporary SQLite MLflow store, and saves the paper-size edge model as an MLflow pyfunc;
2. starts `python -m service` (uvicorn) and `mlflow models serve --env-manager local` on free
   loopback ports, one worker each, both with one torch thread;
3. measures: p50/p99 of single requests per policy and per exit (raw client); the same (1, K, N)
   request against the peer; the local decision, our /healthz and the peer through httpx,
   interleaved; batch throughput (base64 and JSON lists); in-process, the ML decision per
   sample; then remote decisions at 64 concurrent clients with the paper's RTT in several
   setups (bench/remote.py: in-process or separate cloud process, float32, int8 or bfloat16,
   threads, replicas);
4. trains `make run`'s DDNN on the embedded Milano block and reports the test-cost change of
   the int8 and bfloat16 clouds versus float32, and each cloud's compute per sample
   (bench/quantization.py);
5. writes the tables and the issue's targets (met or not) to bench/results.md (bench/report.py).

Client and servers share the machine's cores, as they would on a small edge box.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fixtures import (  # noqa: E402
    build_models,
    child_env,
    demand_windows,
    free_port,
    process,
    register,
    save_peer,
)
from measures import (  # noqa: E402
    batch_breakdown,
    httpx_p50s,
    in_process_ml_decision_us,
    kept_local_by_ml,
    measure_batch,
    measure_peer,
    measure_policies,
    parity,
)
from quantization import cloud_speed, cost_change  # noqa: E402
from remote import AB, CHOICE_AB, SETUPS, Setup, measure_setups  # noqa: E402
from report import report  # noqa: E402

from ddnn.config import PAPER_RTT_MS  # noqa: E402
from ddnn.policies import COST_AWARE, ML  # noqa: E402

log = logging.getLogger("bench")


def busy_processes() -> str:
    """What else keeps the cores busy (over 20% of a core in a 1 s look), in a few words."""
    others = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if p.pid != os.getpid()]
    for p in others:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(1.0)
    busy = []
    for p in others:
        try:
            share = p.cpu_percent(None)
        except psutil.Error:
            continue
        if share > 20:
            words = " ".join(p.info["cmdline"] or [p.info["name"] or "?"])
            busy.append(f"{share:.0f}% `{words[:70]}`")
    return "; ".join(busy) or "nothing over 20% of a core"


def single_and_batch(
    models: Any, windows: Any, root: Path, uri: str, args: argparse.Namespace
) -> dict[str, Any]:
    """The paper-size service and the peer: single requests, httpx p50s and batch throughput."""
    results: dict[str, Any] = {}
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
        log.info("local decision through httpx")
        results["httpx"] = httpx_p50s(port, peer_port, windows[:64], args.requests)
        log.info("batch throughput")
        batch = {"policy": COST_AWARE.name, "cost": 1e9}  # every window decided, all local
        results["batch_b64"] = measure_batch(port, windows, **batch, encoding="base64", repeats=5)
        results["batch_json"] = measure_batch(
            port, windows[:256], **batch, encoding="json", repeats=5
        )
        short = windows[:256].astype("float64").round(2)
        results["batch_json_short"] = measure_batch(
            port, short, **batch, encoding="json", repeats=5
        )
        results["batch_ml"] = measure_batch(
            port, windows, policy=ML.name, cost=None, encoding="base64", repeats=3
        )
    return results


def chosen_setup(setup: Setup, which: str) -> bool:
    pairs = {"levers": AB, "choices": CHOICE_AB}.get(which)
    if pairs is not None:
        return any(setup.label in pair for pair in pairs)
    return which == "all" or setup.cloud == "simulated"


def quantization(args: argparse.Namespace) -> tuple[list[Any], list[Any]] | None:
    if not args.train:
        return None
    log.info("lower precisions vs float32: training %s", args.train)
    changes = [cost_change(profile, args.w_local, None) for profile in args.train.split(",")]
    speeds = [cloud_speed(size, build_models(size).ddnn.cloud) for size in ("paper", "small")]
    return changes, speeds


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    started = time.perf_counter()
    models = build_models()
    windows = demand_windows(1024, seed=2)
    results: dict[str, Any] = {
        "load": os.getloadavg()[0],
        "others": busy_processes(),
        "ml_us_1": in_process_ml_decision_us(models, windows, 1),
        "ml_us_1024": in_process_ml_decision_us(models, windows, 1024),
        "breakdown": batch_breakdown(models, windows[:256]),
    }
    with tempfile.TemporaryDirectory(prefix="ddnn-bench-") as tmp:
        root = Path(tmp)
        (root / "paper").mkdir()
        (root / "small").mkdir()
        uris = {
            "paper": register(models, root / "paper"),
            "small": register(build_models("small"), root / "small"),
        }
        results |= single_and_batch(models, windows, root / "paper", uris["paper"], args)
        chosen = tuple(s for s in SETUPS if chosen_setup(s, args.setups))
        results["remote"] = measure_setups(chosen, uris, windows, args.seconds, root, args.rounds)
    results["quantization"] = quantization(args)
    results["load_end"] = os.getloadavg()[0]
    results["seconds"] = time.perf_counter() - started
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="single requests per policy")
    parser.add_argument("--seconds", type=float, default=8.0, help="each 64-client load window")
    parser.add_argument(
        "--setups",
        choices=("all", "simulated", "levers", "choices"),
        default="all",
        help="levers: only the A/B setups of remote.AB (in-process); choices: only those of "
        "remote.CHOICE_AB (the cloud's precision, replicas)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of the remote setups"
    )
    parser.add_argument(
        "--train",
        default="small,paper",
        help="profiles to train for the precisions vs float32 ('' skips)",
    )
    parser.add_argument("--w-local", type=float, default=0.1, help="their weight pair's w_L")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    command = shlex.join(["python", "bench/service_latency.py", *sys.argv[1:]])
    text = report(run(args), command)
    sys.stdout.write(text + "\n")
    args.out.write_text(text + "\n")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
