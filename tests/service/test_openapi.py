"""The OpenAPI document states the served model's K and N (and H_e, C for the cloud), and its
request examples are answered 200 by that model; it follows a reload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import ADMIN_KEY, K, N, make_settings
from tests.service.test_lifecycle import SwitchableLoader

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., TestClient]
PATHS = ["/v1/allocations", "/v1/allocations/batch", "/v1/cloud/infer"]


def body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


def test_openapi_states_the_served_sizes(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(max_batch=64))
    document = client.get("/openapi.json").json()
    demand = body_schema(document, "/v1/allocations")["properties"]["demand"]
    assert (demand["minItems"], demand["maxItems"]) == (K, K)
    assert (demand["items"]["minItems"], demand["items"]["maxItems"]) == (N, N)
    assert demand["items"]["items"] == {"type": "number", "minimum": 0, "maximum": 1e30}
    windows = body_schema(document, "/v1/allocations/batch")["properties"]["windows"]["anyOf"][0]
    assert windows["maxItems"] == 64
    assert windows["items"]["maxItems"] == K and windows["items"]["items"] == demand["items"]
    cloud = body_schema(document, "/v1/cloud/infer")["properties"]
    assert cloud["z"]["items"]["minItems"] == N and cloud["z"]["items"]["items"]["maxItems"] == 1
    assert cloud["context"]["items"]["maxItems"] == K  # C = K for the test model


@pytest.mark.parametrize("path", PATHS)
def test_documented_examples_are_accepted(client: TestClient, path: str) -> None:
    examples = body_schema(client.get("/openapi.json").json(), path)["examples"]
    assert examples
    for example in examples:
        response = client.post(path, json=example)
        assert response.status_code == 200, (example, response.text)


def test_openapi_follows_a_reload(client_factory: ClientFactory) -> None:
    loader = SwitchableLoader(version="1")
    client = client_factory(make_settings(), loader)
    example = body_schema(client.get("/openapi.json").json(), "/v1/cloud/infer")["examples"][0]
    assert example["ddnn_version"] == "1"
    loader.version = "2"
    assert client.post("/v1/models/reload", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    example = body_schema(client.get("/openapi.json").json(), "/v1/cloud/infer")["examples"][0]
    assert example["ddnn_version"] == "2"
    assert client.post("/v1/cloud/infer", json=example).status_code == 200


def test_openapi_without_a_pair_is_generic(client_factory: ClientFactory) -> None:
    loader = SwitchableLoader()
    loader.release.clear()
    try:
        client = client_factory(make_settings(startup_load_timeout_s=0), loader)
        demand = body_schema(client.get("/openapi.json").json(), "/v1/allocations")
        assert "maxItems" not in demand["properties"]["demand"]
    finally:
        loader.release.set()


def test_openapi_shows_the_cloud_token_scheme_only_when_set(client_factory: ClientFactory) -> None:
    plain = client_factory(make_settings()).get("/openapi.json").json()
    assert "securitySchemes" not in plain.get("components", {})
    guarded = client_factory(make_settings(cloud_token="t")).get("/openapi.json").json()
    assert guarded["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "401" in guarded["paths"]["/v1/cloud/infer"]["post"]["responses"]
