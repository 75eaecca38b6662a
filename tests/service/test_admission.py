"""X-Request-ID on every response, and load shedding: 429 + Retry-After at once under overload
(instead of queueing past the deadline), while probes keep answering."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from registry import DDNN_MODEL_NAME
from tests.factories import demand_payload
from tests.service.conftest import K, N, make_settings

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., TestClient]


def allocate(client: TestClient, policy: str = "local", **headers: str) -> httpx.Response:
    body = {"demand": demand_payload(N, K), "policy": policy}
    return client.post("/v1/allocations", json=body, headers=headers)


def test_request_id_is_echoed(client: TestClient) -> None:
    response = allocate(client, **{"X-Request-ID": "client-42"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "client-42"


def test_request_id_is_made_when_absent_or_unusable(client: TestClient) -> None:
    made = allocate(client).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert allocate(client).headers["x-request-id"] != made  # one per request
    unusable = allocate(client, **{"X-Request-ID": "x" * 500}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", unusable)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/no/such/path", None),
        ("POST", "/v1/allocations", {"demand": [[1.0]]}),
        ("GET", "/healthz", None),
        ("GET", "/v2/health/ready", None),
    ],
)
def test_request_id_on_every_kind_of_answer(
    client: TestClient, method: str, path: str, body: object
) -> None:
    response = client.request(method, path, json=body, headers={"X-Request-ID": "abc"})
    assert response.headers["x-request-id"] == "abc"


def test_overload_is_shed_with_429_and_retry_after(client_factory: ClientFactory) -> None:
    # 2 in flight at most; remote answers take 300 ms (the simulated round trip)
    client = client_factory(make_settings(max_in_flight=2, rtt_ms=300.0, shed_retry_after_s=3))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: allocate(client, "remote"), range(8)))
        # probes are never shed, even while the bound is reached
        assert client.get("/healthz").status_code == 200
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) >= 2 and codes.count(429) >= 1
    assert set(codes) == {200, 429}
    shed = next(a for a in answers if a.status_code == 429)
    assert shed.headers["retry-after"] == "3"
    assert (
        shed.json()["error"] == "overloaded"
        and "2 requests are in flight" in (shed.json()["message"])
    )
    assert shed.headers["x-request-id"]
    assert allocate(client).status_code == 200  # the load is gone: served again


def test_overload_on_v2_answers_the_protocols_error(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(max_in_flight=1, rtt_ms=300.0))
    tensor = [[[1.0] * K] * N]
    body = {
        "inputs": [{"name": "demand", "shape": [1, N, K], "datatype": "FP32", "data": tensor}],
        "parameters": {"policy": "remote"},
    }
    path = f"/v2/models/{DDNN_MODEL_NAME}/infer"
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: client.post(path, json=body), range(4)))
    shed = [a for a in answers if a.status_code == 429]
    assert shed and set(shed[0].json()) == {"error"}
    assert "overloaded" in shed[0].json()["error"]


def test_no_bound_when_max_in_flight_is_zero(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(max_in_flight=0, rtt_ms=100.0))
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = {a.status_code for a in pool.map(lambda _: allocate(client, "remote"), range(6))}
    assert codes == {200}
