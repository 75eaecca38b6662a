"""Startup, readiness, retries and reloads, with fake loaders (fast, no MLflow)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from registry import LoadedPair, PairMismatchError, RegistryError
from service.config import Settings
from tests.factories import demand_payload
from tests.service.conftest import ADMIN_KEY, K, N, fake_loader, make_settings

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., TestClient]
ADMIN = {"X-API-Key": ADMIN_KEY}


def wait_ready(client: TestClient, deadline_s: float = 10.0) -> None:
    """Poll /readyz until 200 or the deadline (no fixed sleep)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready after {deadline_s} s: {client.get('/readyz').json()}")


class SwitchableLoader:
    """Fails (or blocks) until told otherwise; then returns the pair of the chosen version."""

    def __init__(self, error: Exception | None = None, version: str = "1") -> None:
        self.error = error
        self.version = version
        self.release = threading.Event()
        self.release.set()
        self.calls = 0

    def __call__(self, settings: Settings) -> LoadedPair:
        self.calls += 1
        self.release.wait(timeout=30)
        if self.error is not None:
            raise self.error
        return fake_loader(self.version, seed=int(self.version))(settings)


def test_get_readyz_not_ready_while_loading(client_factory: ClientFactory) -> None:
    loader = SwitchableLoader()
    loader.release.clear()  # the first load blocks
    try:
        client = client_factory(make_settings(startup_load_timeout_s=0.05), loader)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reason"] == "the models have not been loaded yet"
        blocked = client.post("/v1/allocations", json={"demand": demand_payload(N, K)})
        assert blocked.status_code == 503
        assert blocked.json()["error"] == "not_ready"
        assert client.get("/healthz").status_code == 200  # alive though not ready
    finally:
        loader.release.set()
    wait_ready(client)
    assert client.post("/v1/allocations", json={"demand": demand_payload(N, K)}).status_code == 200


def test_get_readyz_registry_down_reports_reason_and_recovers(
    client_factory: ClientFactory,
) -> None:
    loader = SwitchableLoader(error=RegistryError("the MLflow store is unreachable: refused"))
    client = client_factory(make_settings(startup_load_timeout_s=0.2), loader)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "unreachable" in response.json()["reason"]
    assert client.get("/v1/models").json()["ready"] is False
    loader.error = None  # the registry comes back: the background retry picks it up
    wait_ready(client)
    assert loader.calls >= 2
    assert "ddnn_model_load_failures_total" in client.get("/metrics").text


def test_get_readyz_mismatched_pair_refused_at_start(client_factory: ClientFactory) -> None:
    loader = SwitchableLoader(error=PairMismatchError("offloader v2 was trained for ddnn v1"))
    client = client_factory(make_settings(startup_load_timeout_s=0.2), loader)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "refused a mismatched pair" in response.json()["reason"]
    assert client.post("/v1/allocations", json={"demand": demand_payload(N, K)}).status_code == 503


def test_post_reload_swaps_to_new_versions(client_factory: ClientFactory) -> None:
    loader = SwitchableLoader(version="1")
    client = client_factory(make_settings(), loader)
    loader.version = "2"
    response = client.post("/v1/models/reload", headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["reloaded"] is True
    assert response.json()["previous"]["ddnn"] == "1"
    assert response.json()["current"] == {"ddnn": "2", "offloader": "2", "alias": "champion"}
    answer = client.post("/v1/allocations", json={"demand": demand_payload(N, K)})
    assert answer.status_code == 200
    assert answer.json()["models"]["ddnn"] == "2"
    assert 'ddnn_model_info{alias="champion",ddnn_version="2"' in client.get("/metrics").text


@pytest.mark.parametrize(
    ("error", "status"),
    [(PairMismatchError("offloader for v1, ddnn v2"), 409), (RegistryError("store down"), 502)],
)
def test_post_reload_failure_keeps_old_pair(
    client_factory: ClientFactory, error: Exception, status: int
) -> None:
    loader = SwitchableLoader(version="1")
    client = client_factory(make_settings(), loader)
    loader.error = error
    response = client.post("/v1/models/reload", headers=ADMIN)
    assert response.status_code == status
    assert response.json()["error"] == "reload_failed"
    assert str(error) in response.json()["message"]
    assert "previous pair keeps serving" in response.json()["message"]
    assert client.get("/readyz").status_code == 200
    assert client.get("/v1/models").json()["ddnn"]["version"] == "1"
    answer = client.post("/v1/allocations", json={"demand": demand_payload(N, K)})
    assert answer.status_code == 200
    assert answer.json()["models"]["ddnn"] == "1"


def test_poll_alias_reloads_when_alias_moves(client_factory: ClientFactory) -> None:
    from service.main import create_app

    loader = SwitchableLoader(version="1")
    versions = {"now": ("1", "1")}
    app = create_app(
        make_settings(alias_poll_interval_s=0.05), loader=loader, resolver=lambda s: versions["now"]
    )
    with TestClient(app) as client:
        assert client.get("/v1/models").json()["ddnn"]["version"] == "1"
        loader.version = "2"
        versions["now"] = ("2", "2")
        deadline = time.monotonic() + 10
        while client.get("/v1/models").json()["ddnn"]["version"] != "2":
            assert time.monotonic() < deadline, "the poller did not pick up the new alias"
            time.sleep(0.02)
