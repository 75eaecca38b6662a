"""An allocation is an amount of compute: never below zero, and the answer says when the model's
output was clipped at zero (a flat window of 1.0 makes the tiny model answer below zero)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.schemas import AllocationResponse, BatchAllocationResponse
from tests.factories import demand_payload
from tests.service.conftest import K, N
from tests.service.test_api import model_exits

pytestmark = pytest.mark.integration

FLAT = [[1.0] * N for _ in range(K)]


@pytest.mark.parametrize("policy", ["local", "remote"])
def test_post_allocation_flat_window_is_clipped_at_zero(client: TestClient, policy: str) -> None:
    local, remote = model_exits(FLAT)
    raw = local if policy == "local" else remote
    assert raw.min() < 0  # what the model itself answers for this window
    response = client.post("/v1/allocations", json={"demand": FLAT, "policy": policy})
    assert response.status_code == 200
    body = AllocationResponse.model_validate(response.json())
    assert min(body.allocation) == 0.0 and body.clipped is True
    np.testing.assert_allclose(body.allocation, np.maximum(raw, 0.0), rtol=1e-5, atol=1e-4)
    assert "clipped" in body.rationale.sentence


def test_post_batch_says_which_windows_were_clipped(client: TestClient) -> None:
    positive = demand_payload(N, K, seed=3)
    assert model_exits(positive)[0].min() > 0
    response = client.post(
        "/v1/allocations/batch", json={"windows": [FLAT, positive, FLAT], "policy": "local"}
    )
    assert response.status_code == 200
    body = BatchAllocationResponse.model_validate(response.json())
    assert [r.clipped for r in body.results] == [True, False, True]
    assert body.clipped == 2
    assert all(min(r.allocation) >= 0 for r in body.results)


def test_openapi_documents_the_floor(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "clipped" in schemas["AllocationResponse"]["properties"]
    assert "clipped" in schemas["BatchAllocationResponse"]["properties"]
    assert (
        "never below zero"
        in schemas["AllocationResponse"]["properties"]["allocation"]["description"]
    )
