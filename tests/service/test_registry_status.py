"""GET /v1/models says whether the alias poller reaches the registry (fake resolver, no MLflow).

The same with a real PostgreSQL and mlflow server killed under load: tests/e2e/test_deployment.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry import RegistryError
from service.config import Settings
from service.main import create_app
from tests.factories import demand_payload
from tests.service.conftest import K, N, fake_loader, make_settings

pytestmark = pytest.mark.integration


class Registry:
    """What the alias points at, or down."""

    def __init__(self) -> None:
        self.versions = ("1", "1")
        self.down = False

    def resolve(self, settings: Settings) -> tuple[str, str]:
        if self.down:
            raise RegistryError("the MLflow store is unreachable: connection refused")
        return self.versions


def poll_until(client: TestClient, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        models: dict[str, Any] = client.get("/v1/models").json()
        if check(models):
            return models
        assert time.monotonic() < deadline, f"not reached: {models}"
        time.sleep(0.02)


def test_models_report_registry_unreachable_while_serving_the_loaded_pair() -> None:
    registry = Registry()
    loaders = {"1": fake_loader("1", seed=1), "2": fake_loader("2", seed=2)}
    app = create_app(
        make_settings(alias_poll_interval_s=0.05),
        loader=lambda s: loaders[registry.versions[0]](s),
        resolver=registry.resolve,
    )
    with TestClient(app) as client:
        models = poll_until(client, lambda m: m["registry"]["reachable"] is True)
        assert models["registry"]["error"] is None and models["registry"]["checked_at"]

        registry.down = True
        models = poll_until(client, lambda m: m["registry"]["reachable"] is False)
        assert "unreachable" in models["registry"]["error"]
        assert models["ready"] is True and models["ddnn"]["version"] == "1"
        answer = client.post("/v1/allocations", json={"demand": demand_payload(N, K)})
        assert answer.status_code == 200 and answer.json()["models"]["ddnn"] == "1"

        registry.versions, registry.down = ("2", "2"), False  # back, with the alias moved
        models = poll_until(client, lambda m: m["ddnn"]["version"] == "2")
        assert models["registry"]["reachable"] is True and models["registry"]["error"] is None


def test_models_registry_status_is_unknown_without_polling() -> None:
    app = create_app(make_settings(), loader=fake_loader("1", seed=1), resolver=None)
    with TestClient(app) as client:
        models = client.get("/v1/models").json()
    assert models["registry"] == {"reachable": None, "checked_at": None, "error": None}
