"""A real `mlflow server` on a free loopback port: register and load a pair through it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ddnn.config import CostConfig, DDNNConfig
from ddnn.model import DDNN
from ddnn.windows import MinMaxScaler
from registry import (
    DDNN_MODEL_NAME,
    OFFLOADER_MODEL_NAME,
    DDNNBundle,
    PairMismatchError,
    load_pair,
    register_ddnn,
    register_offloader,
    set_alias,
)
from tests.registry.conftest import offloader_bundle_for

pytestmark = pytest.mark.e2e

STARTUP_DEADLINE_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll /health until it answers 200; fail early if the server died or the deadline passed."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"mlflow server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)  # a poll interval, not a fixed wait for readiness
    pytest.fail(
        f"mlflow server not healthy within {STARTUP_DEADLINE_S}s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "server.log"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}",
        "--default-artifact-root", str(tmp_path / "art"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    with log.open("wb") as sink:
        # its own session, so the server and any worker it forks are stopped together
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, log)
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL whatever of it is left after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # workers that outlived the leader
    except ProcessLookupError:
        pass
    process.wait(timeout=15)


def test_register_and_load_pair_through_a_server(
    mlflow_server: str, tiny_config: DDNNConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = DDNN(tiny_config).eval()
    scaler = MinMaxScaler(np.zeros(tiny_config.n_vnfs), np.ones(tiny_config.n_vnfs))
    bundle = DDNNBundle.from_model(model, cost=CostConfig(), scaler=scaler, metadata={})
    ddnn_ref = register_ddnn(bundle)
    offloader_ref = register_offloader(offloader_bundle_for(tiny_config, ddnn_ref.version))
    set_alias(DDNN_MODEL_NAME, ddnn_ref.version)
    set_alias(OFFLOADER_MODEL_NAME, offloader_ref.version)

    pair = load_pair(tracking_uri=mlflow_server)

    x = torch.rand(3, tiny_config.n_steps, tiny_config.n_vnfs)
    assert torch.equal(pair.ddnn.build()(x).y_remote, model(x).y_remote)
    assert pair.offloader.ddnn_version == pair.ddnn_ref.version == ddnn_ref.version

    newer = register_ddnn(bundle)
    set_alias(DDNN_MODEL_NAME, newer.version)
    with pytest.raises(PairMismatchError):
        load_pair(tracking_uri=mlflow_server)
