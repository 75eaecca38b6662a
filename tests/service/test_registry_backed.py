"""The service on a real (temporary SQLite) MLflow registry: load, refuse, retry, reload."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from registry import DDNN_MODEL_NAME, set_alias
from service.main import create_app
from tests.factories import demand_payload
from tests.service.conftest import ADMIN_KEY, K, N, Store, make_settings
from tests.service.test_lifecycle import wait_ready

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., TestClient]


def start(store: Store, alias: str, **overrides: object) -> TestClient:
    settings = make_settings(tracking_uri=store.uri, alias=alias, **overrides)
    client = TestClient(create_app(settings))  # the real registry loader
    client.__enter__()
    return client


def test_start_loads_alias_pair_from_registry(store: Store) -> None:
    client = start(store, "champion")
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["models"] == {"ddnn": "1", "offloader": "1", "alias": "champion"}
        response = client.post("/v1/allocations", json={"demand": demand_payload(N, K)})
        assert response.status_code == 200
        assert response.json()["models"]["ddnn"] == "1"
    finally:
        client.__exit__(None, None, None)


def test_start_refuses_mismatched_pair(store: Store) -> None:
    store.alias("mismatch", ddnn="2", offloader="1")
    client = start(
        store,
        "mismatch",
        startup_load_timeout_s=5.0,
        load_retry_initial_s=30.0,
        load_retry_max_s=30.0,
    )
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        reason = response.json()["reason"]
        assert "refused a mismatched pair" in reason and "version 1" in reason
    finally:
        client.__exit__(None, None, None)


def test_start_without_alias_retries_until_it_exists(store: Store) -> None:
    client = start(store, "late", startup_load_timeout_s=5.0)
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "alias 'late'" in response.json()["reason"]
        store.alias("late", ddnn="1", offloader="1")
        wait_ready(client, deadline_s=30)
        assert client.get("/readyz").json()["models"]["ddnn"] == "1"
    finally:
        client.__exit__(None, None, None)


def test_post_reload_keeps_old_pair_until_new_pair_matches(store: Store) -> None:
    store.alias("reload", ddnn="1", offloader="1")
    client = start(store, "reload")
    admin = {"X-API-Key": ADMIN_KEY}
    try:
        set_alias(DDNN_MODEL_NAME, "2", "reload", tracking_uri=store.uri)  # offloader still v1
        refused = client.post("/v1/models/reload", headers=admin)
        assert refused.status_code == 409
        assert "trained for" in refused.json()["message"]
        assert client.get("/v1/models").json()["ddnn"]["version"] == "1"
        assert (
            client.post("/v1/allocations", json={"demand": demand_payload(N, K)}).status_code == 200
        )

        store.alias("reload", ddnn="2", offloader="2")
        swapped = client.post("/v1/models/reload", headers=admin)
        assert swapped.status_code == 200
        assert swapped.json()["current"]["ddnn"] == "2" and swapped.json()["reloaded"] is True
        answer = client.post("/v1/allocations", json={"demand": demand_payload(N, K)})
        assert answer.status_code == 200
        assert answer.json()["models"] == {"ddnn": "2", "offloader": "2", "alias": "reload"}
    finally:
        client.__exit__(None, None, None)
