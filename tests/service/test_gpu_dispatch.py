"""On a GPU the edge pass (with the synchronize that times it) and the device-to-host copy of
the answer run on a worker thread, never on the event loop; on the CPU a single request keeps
its inline fast path. Checked here with a CPU pair that claims to be on cuda; bench/cuda_check.py
checks the real CUDA path where a GPU is present."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import service.allocation as allocation
from service.cloud import LocalCloud
from service.pair import ServingPair
from tests.factories import demand_payload
from tests.service.conftest import K, N, make_bundles

pytestmark = pytest.mark.integration


def threads_of_predict(
    client: TestClient, device: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, set[int]]:
    """(the loop's thread, the threads that ran the edge pass and the conversion to data
    units) for one single-window prediction of a pair that says it is on `device`."""
    real: ServingPair = client.app.state.runtime.pair  # type: ignore[attr-defined]
    pair = copy.copy(real)
    pair.device = torch.device(device)
    seen: set[int] = set()

    def on_real_pair(function: Any) -> Any:
        def run(claimed: ServingPair, *args: Any, **kwargs: Any) -> Any:
            seen.add(threading.get_ident())
            return function(real, *args, **kwargs)

        return run

    monkeypatch.setattr(allocation, "edge_pass", on_real_pair(allocation.edge_pass))
    monkeypatch.setattr(allocation, "to_data_units", on_real_pair(allocation.to_data_units))
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    windows = np.asarray([demand_payload(N, K)], dtype=np.float64)

    async def run() -> int:
        await allocation.predict(
            pair=pair,
            link=runtime.link_for(real),
            windows=windows,
            policy="local",
            requested_cost=None,
            options=runtime.options,
            cloud_timeout_s=1.0,
            started=time.perf_counter(),
        )
        return threading.get_ident()

    return asyncio.run(run()), seen


def test_gpu_pair_runs_edge_and_host_copy_off_the_loop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread, seen = threads_of_predict(client, "cuda", monkeypatch)
    assert seen and loop_thread not in seen


def test_cpu_pair_keeps_the_inline_fast_path(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread, seen = threads_of_predict(client, "cpu", monkeypatch)
    assert seen == {loop_thread}


def test_local_cloud_has_its_own_stream_only_on_cuda() -> None:
    cloud = LocalCloud(make_bundles()[0].build().cloud, max_batch=8, max_wait_s=0.0)
    assert cloud.stream is None  # the CPU path is unchanged
    asyncio.run(cloud.close())


@pytest.mark.e2e
def test_cuda_check_script_runs_or_says_it_skipped() -> None:
    script = Path(__file__).resolve().parents[2] / "bench" / "cuda_check.py"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if torch.cuda.is_available():
        assert "CUDA path checked on" in done.stdout
    else:
        assert done.stdout.strip() == "CUDA not available: skipped"
