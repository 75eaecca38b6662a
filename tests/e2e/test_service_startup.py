"""The real process: the port answers before the models are loaded, and DDNN_DEVICE=cuda on a
machine without CUDA ends the process at once with a message naming the setting."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from tests.e2e.test_service_processes import Process, free_port, serve, service_env

pytestmark = pytest.mark.e2e

HEALTHZ_DEADLINE_S = 40.0  # imports on a loaded machine; the old start waited 60 s for the load


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """A tracking URI whose server accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_port_answers_while_the_models_load(
    processes: list[Process], tmp_path: Path, silent_registry: str
) -> None:
    port = free_port()
    service = serve(processes, tmp_path, "service", service_env(port, silent_registry))
    started = time.monotonic()
    service.wait_http(f"http://127.0.0.1:{port}/healthz", deadline_s=HEALTHZ_DEADLINE_S)
    assert time.monotonic() - started < HEALTHZ_DEADLINE_S
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["ready"] is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_exits_at_once(tmp_path: Path, silent_registry: str) -> None:
    env = service_env(free_port(), silent_registry, DDNN_DEVICE="cuda")
    done = subprocess.run(
        [sys.executable, "-m", "service"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode != 0
    assert "DDNN_DEVICE=cuda" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
