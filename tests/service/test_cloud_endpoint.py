"""POST /v1/cloud/infer refuses what it cannot run with a documented 4xx, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import K, N

pytestmark = pytest.mark.integration

GOOD_Z = [[[0.5]] * N]
GOOD_CONTEXT = [[0.5] * K]


def infer(client: TestClient, **body: Any) -> tuple[int, dict[str, Any]]:
    response = client.post("/v1/cloud/infer", json={"ddnn_version": "1", **body})
    return response.status_code, response.json()


def test_post_cloud_infer_good_body_answers(client: TestClient) -> None:
    status, body = infer(client, z=GOOD_Z, context=GOOD_CONTEXT)
    assert status == 200 and len(body["y"]) == 1 and len(body["y"][0]) == K


@pytest.mark.parametrize(
    ("z", "context", "fragment"),
    [
        ([[[0.5]] * N, [[0.5]] * (N - 1)], GOOD_CONTEXT * 2, "z"),  # ragged in N
        ([[[0.5]] * (N - 1) + [[0.5, 0.5]]], GOOD_CONTEXT, "z"),  # ragged in H_e
        ([[[0.5]] * N, []], GOOD_CONTEXT * 2, "z"),  # an empty sample
        (GOOD_Z, [], "context"),  # no context at all
        (GOOD_Z, [[]], "context"),  # an empty context row
        (GOOD_Z, [[0.5] * K, [0.5] * K], "context"),  # more contexts than samples
        (GOOD_Z, [[0.5] * (K + 1)], "context"),  # a context of the wrong size
        (GOOD_Z * 2, [[0.5] * K, [0.5] * (K - 1)], "context"),  # ragged context
    ],
)
def test_post_cloud_infer_bad_shapes_are_422(
    client: TestClient, z: Any, context: Any, fragment: str
) -> None:
    status, body = infer(client, z=z, context=context)
    assert status == 422, body
    assert body["error"] in ("invalid_input", "validation_error")
    assert body["message"].startswith(fragment), body["message"]


@pytest.mark.parametrize(
    "content", [b"not json", b"", b"{", b"[1, 2]", '{"z": "\u00e9"}'.encode("latin-1")]
)
def test_post_cloud_infer_body_that_is_not_a_json_object_is_422(
    client: TestClient, content: bytes
) -> None:
    response = client.post(
        "/v1/cloud/infer", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


def test_openapi_documents_every_status_of_cloud_infer(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/cloud/infer"]["post"]
    assert {"200", "409", "413", "422", "503"} <= set(operation["responses"])
    assert "400" not in operation["responses"]  # a body that is not JSON is a 422 too
    assert json.dumps(operation["requestBody"]).count("ddnn_version") >= 1
