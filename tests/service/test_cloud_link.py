"""The edge-to-cloud link: a shared-secret bearer token (DDNN_CLOUD_TOKEN) and a compact binary
body (DDNN_CLOUD_BINARY: z and context as little-endian float32, shapes in headers)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from service.cloud import RemoteCloud
from service.config import Settings
from service.main import create_app
from tests.factories import demand_payload
from tests.service.conftest import K, N, fake_loader, make_bundles, make_settings
from tests.service.test_api import expected_exits, model_input
from tests.service.test_concurrency import serving

pytestmark = pytest.mark.integration

TOKEN = "cloud-secret-1234"
ClientFactory = Callable[..., TestClient]


def edge_outputs(rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    model = make_bundles()[0].build()
    demand = [demand_payload(N, K, seed=s) for s in range(rows)]
    with torch.inference_mode():
        out = model.edge(torch.cat([model_input(d) for d in demand]))
    return out.z.numpy(), out.context.numpy()


def binary_request(z: np.ndarray, context: np.ndarray, version: str = "1") -> dict[str, Any]:
    return {
        "content": z.astype("<f4").tobytes() + context.astype("<f4").tobytes(),
        "headers": {
            "content-type": "application/octet-stream",
            "x-ddnn-version": version,
            "x-ddnn-z-shape": ",".join(map(str, z.shape)),
            "x-ddnn-context-shape": ",".join(map(str, context.shape)),
        },
    }


def test_settings_read_token_and_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).cloud_token is None  # type: ignore[call-arg]
    assert Settings(_env_file=None).cloud_binary is True  # type: ignore[call-arg]
    monkeypatch.setenv("DDNN_CLOUD_TOKEN", TOKEN)
    monkeypatch.setenv("DDNN_CLOUD_BINARY", "false")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.cloud_token is not None and settings.cloud_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)
    assert settings.cloud_binary is False


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"]
)
def test_cloud_with_token_refuses_other_credentials(
    client_factory: ClientFactory, authorization: str | None
) -> None:
    client = client_factory(make_settings(role="cloud", cloud_token=TOKEN))
    z, context = edge_outputs()
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"ddnn_version": "1", "z": z.tolist(), "context": context.tolist()}
    response = client.post("/v1/cloud/infer", json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "DDNN_CLOUD_TOKEN" in response.json()["message"]


def test_cloud_answers_json_and_binary_alike(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(role="cloud", cloud_token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    z, context = edge_outputs(3)
    body = {"ddnn_version": "1", "z": z.tolist(), "context": context.tolist()}
    as_json = client.post("/v1/cloud/infer", json=body, headers=auth)
    request = binary_request(z, context)
    as_binary = client.post(
        "/v1/cloud/infer", content=request["content"], headers={**request["headers"], **auth}
    )
    assert as_json.status_code == as_binary.status_code == 200, as_binary.text
    np.testing.assert_allclose(as_binary.json()["y"], as_json.json()["y"], rtol=1e-6)
    assert as_binary.json()["batch_size"] == 3


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda r: r["headers"].pop("x-ddnn-version"), "X-DDNN-Version"),
        (lambda r: r["headers"].pop("x-ddnn-z-shape"), "X-DDNN-Z-Shape"),
        (lambda r: r["headers"].update({"x-ddnn-z-shape": "2,a,1"}), "X-DDNN-Z-Shape"),
        (lambda r: r.update(content=r["content"][:-4]), "bytes"),
        (lambda r: r.update(binary_request(np.zeros((2, N - 1, 1)), np.zeros((2, K)))), "N = 12"),
        (lambda r: r.update(binary_request(np.zeros((2, N, 1)), np.zeros((1, K)))), "B = 2"),
        (lambda r: r.update(content=b"\xff\xff\xff\x7f" + r["content"][4:]), "finite"),
    ],
)
def test_cloud_binary_body_errors_are_422(
    client: TestClient, change: Callable[[dict[str, Any]], object], fragment: str
) -> None:
    request = binary_request(*edge_outputs(2))
    change(request)
    response = client.post("/v1/cloud/infer", **request)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["message"]


def test_cloud_binary_other_version_conflicts(client: TestClient) -> None:
    response = client.post("/v1/cloud/infer", **binary_request(*edge_outputs(1), version="9"))
    assert response.status_code == 409


async def _edge_through_cloud(binary: bool, edge_token: str | None) -> tuple[Any, list[Any]]:
    cloud_app = create_app(
        make_settings(role="cloud", cloud_token=TOKEN), loader=fake_loader(), resolver=None
    )
    settings = make_settings(
        role="edge", cloud_url="http://cloud", cloud_token=edge_token, cloud_binary=binary
    )
    edge_app = create_app(settings, loader=fake_loader(), resolver=None)
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    async with cloud_app.router.lifespan_context(cloud_app), serving(edge_app) as edge:
        runtime = edge_app.state.runtime
        await runtime.remote.close()
        runtime.remote = RemoteCloud(
            "http://cloud",
            timeout_s=5.0,
            retry_after_s=0.0,
            max_batch=64,
            max_wait_s=0.0,
            binary=binary,
            token=settings.cloud_token,
            client=httpx.AsyncClient(
                transport=httpx.ASGITransport(app=cloud_app), event_hooks={"request": [record]}
            ),
        )
        demand = demand_payload(N, K, seed=4)
        response = await edge.post("/v1/allocations", json={"demand": demand, "policy": "remote"})
    return response.json(), sent


@pytest.mark.parametrize("binary", [True, False])
def test_edge_sends_token_and_body_format(binary: bool) -> None:
    answer, sent = asyncio.run(_edge_through_cloud(binary, TOKEN))
    assert answer["exit"] == "remote", answer["rationale"]["fallback"]
    np.testing.assert_allclose(
        answer["allocation"], expected_exits(demand_payload(N, K, seed=4))[1], rtol=1e-4, atol=1e-3
    )
    assert sent[0].headers["authorization"] == f"Bearer {TOKEN}"
    kind = "application/octet-stream" if binary else "application/json"
    assert sent[0].headers["content-type"] == kind
    if binary:
        assert len(sent[0].content) == 4 * (N * 1 + K)  # z (N x H_e=1) + context, float32


def test_edge_with_wrong_token_answers_locally_and_says_why() -> None:
    answer, _ = asyncio.run(_edge_through_cloud(True, "not-the-token"))
    assert answer["exit"] == "local"
    assert "401" in answer["rationale"]["fallback"]
