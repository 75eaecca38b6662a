"""Strict JSON both ways: non-finite numbers are refused with 422 in every request schema, and
no response carries NaN or Infinity (a non-finite value in an answer is a 500 with a clean body)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from registry import DDNN_MODEL_NAME, OFFLOADER_MODEL_NAME, LoadedPair, ModelRef
from service.main import create_app
from service.runtime import PairLoader
from tests.factories import demand_payload
from tests.service.conftest import K, N, make_bundles, make_settings

pytestmark = pytest.mark.integration

NON_FINITE = ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"]


def send(client: TestClient, path: str, text: str) -> tuple[int, str]:
    response = client.post(path, content=text, headers={"content-type": "application/json"})
    return response.status_code, response.text


def demand_text(value: str | None = None) -> str:
    """A window as JSON text, its [1][5] sample replaced by a literal (NaN, 1e999...)."""
    rows = [[json.dumps(x) for x in row] for row in demand_payload(N, K)]
    if value is not None:
        rows[1][5] = value
    return "[" + ", ".join("[" + ", ".join(row) + "]" for row in rows) + "]"


@pytest.mark.parametrize("literal", NON_FINITE)
def test_post_allocation_non_finite_transmission_cost_rejected(
    client: TestClient, literal: str
) -> None:
    status, text = send(
        client, "/v1/allocations", f'{{"demand": {demand_text()}, "transmission_cost": {literal}}}'
    )
    assert status == 422, text
    body = json.loads(text)
    assert body["message"].startswith("transmission_cost:") and "finite" in body["message"]


@pytest.mark.parametrize("literal", NON_FINITE)
def test_post_batch_non_finite_numbers_rejected(client: TestClient, literal: str) -> None:
    window = demand_text()
    cost = f'{{"windows": [{window}], "transmission_cost": {literal}}}'
    status, text = send(client, "/v1/allocations/batch", cost)
    assert status == 422 and "transmission_cost" in json.loads(text)["message"], text
    sample = f'{{"windows": [{window}, {demand_text(literal)}]}}'
    status, text = send(client, "/v1/allocations/batch", sample)
    assert status == 422 and "windows[1][1][5]" in json.loads(text)["message"], text


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize("field", ["z", "context"])
def test_post_cloud_infer_non_finite_numbers_rejected(
    client: TestClient, literal: str, field: str
) -> None:
    z = [[[0.5]] * N]
    context = [[0.5] * K]
    text = json.dumps({"ddnn_version": "1", "z": z, "context": context})
    target = '"z": [[[0.5]' if field == "z" else '"context": [[0.5'
    replaced = target.replace("0.5", literal)
    status, body = send(client, "/v1/cloud/infer", text.replace(target, replaced, 1))
    assert status == 422, body
    assert field in json.loads(body)["message"] and "finite" in json.loads(body)["message"]


def refuse(constant: str) -> None:
    raise AssertionError(f"{constant} in a response")


def infinite_scaler_loader() -> PairLoader:
    """A pair whose scaler maps every answer to +-inf: what a broken bundle would serve."""
    ddnn, offloader = make_bundles()
    scaler = replace(ddnn.scaler, maximum=np.full(K, np.inf))
    pair = LoadedPair(
        replace(ddnn, scaler=scaler),
        offloader,
        ModelRef(DDNN_MODEL_NAME, "1", "run-1", "champion"),
        ModelRef(OFFLOADER_MODEL_NAME, "1", "run-1", "champion"),
    )
    return lambda settings: pair


@pytest.mark.parametrize("path", ["/v1/allocations", "/v1/allocations/batch"])
def test_post_allocation_non_finite_answer_is_a_clean_500(path: str) -> None:
    app = create_app(make_settings(), loader=infinite_scaler_loader(), resolver=None)
    window = demand_payload(N, K)
    body = {"demand": window} if path == "/v1/allocations" else {"windows": [window, window]}
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(path, json={**body, "policy": "local"})
    assert response.status_code == 500, response.text
    answer = json.loads(response.text, parse_constant=refuse)  # strict JSON
    assert answer["error"] == "internal_error"
