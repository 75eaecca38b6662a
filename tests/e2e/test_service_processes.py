"""End to end: the real `python -m service` process (and a cloud process, and `mlflow server`)
on free loopback ports, called with httpx. Readiness is polled with a deadline, never slept on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import demand_payload
from tests.service.conftest import K, N, Store, build_store, make_bundles

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process with its output in a log file, stopped (and reaped) at the end."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, name: str) -> None:
        self.log = cwd / f"{name}.log"
        self.name = name
        with self.log.open("wb") as out:
            # a session (process group) of its own: stop() also ends its children (mlflow server
            # runs uvicorn as a child process)
            self.popen = subprocess.Popen(
                args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait_http(self, url: str, deadline_s: float = START_DEADLINE_S) -> httpx.Response:
        """Poll url until it answers 200; fail early if the process died."""
        deadline = time.monotonic() + deadline_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.popen.returncode}:\n{self.output()}")
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == 200:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        pytest.fail(f"{self.name}: {url} not ready after {deadline_s} s ({last}):\n{self.output()}")

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL, as when the machine goes away."""
        self._signal_group(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, grace_s: float = 20.0) -> int:
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._signal_group(signal.SIGKILL)  # any child left behind
        return self.popen.returncode


def service_env(port: int, tracking_uri: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DDNN_", "MLFLOW_")) and key != "PORT"
    }
    env.update(
        PYTHONPATH=str(REPO),
        PORT=str(port),
        DDNN_TRACKING_URI=tracking_uri,
        DDNN_RTT_MS="5",
        DDNN_LOG_LEVEL="warning",
        MLFLOW_DISABLE_TELEMETRY="true",
        **extra,
    )
    return env


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop(grace_s=3.0 if process.name == "mlflow-server" else 20.0)


@pytest.fixture(scope="module")
def e2e_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.mktemp("e2e-registry"))


def serve(processes: list[Process], tmp_path: Path, name: str, env: dict[str, str]) -> Process:
    process = Process([sys.executable, "-m", "service"], env, tmp_path, name)
    processes.append(process)
    return process


def allocate(port: int, policy: str) -> httpx.Response:
    body = {"demand": demand_payload(N, K), "policy": policy}
    return httpx.post(f"http://127.0.0.1:{port}/v1/allocations", json=body, timeout=10.0)


def test_serve_process_answers_on_loopback(
    processes: list[Process], tmp_path: Path, e2e_store: Store
) -> None:
    port = free_port()
    service = serve(processes, tmp_path, "service", service_env(port, e2e_store.uri))
    ready = service.wait_http(f"http://127.0.0.1:{port}/readyz")
    assert ready.json()["models"] == {"ddnn": "1", "offloader": "1", "alias": "champion"}

    for policy in ("local", "remote", "ml", "cost_aware", "confidence", "random"):
        response = allocate(port, policy)
        assert response.status_code == 200, response.text
        assert len(response.json()["allocation"]) == K
    assert allocate(port, "remote").json()["latency_ms"]["rtt"] >= 5.0
    bad = httpx.post(f"http://127.0.0.1:{port}/v1/allocations", json={"demand": [[1.0]]})
    assert bad.status_code == 422 and "K=4" in bad.json()["message"]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert metrics.status_code == 200 and "ddnn_decisions_total" in metrics.text
    assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 200

    # SIGTERM: graceful shutdown (uvicorn re-raises the signal once the lifespan has ended)
    assert service.stop() in (0, -signal.SIGTERM)
    assert "Traceback" not in service.output()


def test_edge_answers_locally_when_cloud_process_dies(
    processes: list[Process], tmp_path: Path, e2e_store: Store
) -> None:
    cloud_port, edge_port = free_port(), free_port()
    cloud = serve(
        processes, tmp_path, "cloud", service_env(cloud_port, e2e_store.uri, DDNN_ROLE="cloud")
    )
    edge_env = service_env(
        edge_port,
        e2e_store.uri,
        DDNN_ROLE="edge",
        DDNN_CLOUD_URL=f"http://127.0.0.1:{cloud_port}",
        DDNN_CLOUD_TIMEOUT_S="2",
        DDNN_CLOUD_RETRY_AFTER_S="0.5",
    )
    edge = serve(processes, tmp_path, "edge", edge_env)
    cloud.wait_http(f"http://127.0.0.1:{cloud_port}/readyz")
    edge.wait_http(f"http://127.0.0.1:{edge_port}/readyz")
    assert (
        httpx.get(f"http://127.0.0.1:{edge_port}/v1/models")
        .json()["cloud"]
        .endswith(str(cloud_port))
    )

    answers = []
    for i in range(12):
        if i == 4:  # mid-run: the cloud machine goes away
            cloud.kill()
        answers.append(allocate(edge_port, "remote"))
    assert [a.status_code for a in answers] == [200] * 12
    before, after = [a.json() for a in answers[:4]], [a.json() for a in answers[4:]]
    assert all(a["exit"] == "remote" and a["rationale"]["fallback"] is None for a in before)
    assert all(a["decision"] == "remote" and a["exit"] == "local" for a in after)
    assert all("local exit" in a["rationale"]["sentence"] for a in after)
    assert "unreachable" in after[0]["rationale"]["fallback"]
    metrics = httpx.get(f"http://127.0.0.1:{edge_port}/metrics").text
    assert 'ddnn_cloud_fallbacks_total{reason="unreachable"}' in metrics


def test_serve_process_loads_pair_from_mlflow_server(
    processes: list[Process], tmp_path: Path
) -> None:
    mlflow_port = free_port()
    server = Process(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
        ],
        service_env(0, ""),
        tmp_path,
        "mlflow-server",
    )
    processes.append(server)
    server.wait_http(f"http://127.0.0.1:{mlflow_port}/health")

    from registry import register_ddnn, register_offloader, set_alias

    uri = f"http://127.0.0.1:{mlflow_port}"
    ddnn, offloader = make_bundles(seed=3, ddnn_version="1")
    ddnn_ref = register_ddnn(ddnn, tracking_uri=uri)
    offloader_ref = register_offloader(offloader, tracking_uri=uri)
    set_alias(ddnn_ref.name, ddnn_ref.version, tracking_uri=uri)
    set_alias(offloader_ref.name, offloader_ref.version, tracking_uri=uri)

    port = free_port()
    service = serve(processes, tmp_path, "service", service_env(port, uri))
    ready = service.wait_http(f"http://127.0.0.1:{port}/readyz")
    assert ready.json()["models"]["ddnn"] == ddnn_ref.version
    response = allocate(port, "cost_aware")
    assert response.status_code == 200
    assert response.json()["models"]["offloader"] == offloader_ref.version
