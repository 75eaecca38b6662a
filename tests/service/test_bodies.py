"""service.bodies: a large body parsed in steps gives what pydantic's parser gives, errors too."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service.bodies import INLINE_BODY_BYTES, parse_body, parse_in_steps
from service.schemas import AllocationRequest, BatchAllocationRequest, CloudInferRequest
from tests.factories import demand_payload
from tests.service.conftest import K, N

W = [[1.0, 2.0], [3.0, 4.5]]

CASES: list[tuple[type[BaseModel], bytes]] = [
    (BatchAllocationRequest, json.dumps({"windows": [W, W], "policy": "ml"}).encode()),
    (BatchAllocationRequest, b'{"windows_base64": "AAAA", "transmission_cost": 0.5}'),
    (BatchAllocationRequest, b' {\n"policy" : "local" , "windows" : [ [[1, 2]] ] } \n'),
    (BatchAllocationRequest, b'{"windows": [[[1, NaN]], [[1, "x"]], [[1e999]]]}'),
    (BatchAllocationRequest, b'{"windows": [[[1, 2]], 7, [[true]]], "policy": "oracle"}'),
    (BatchAllocationRequest, b'{"windows": [], "extra": 1}'),
    (BatchAllocationRequest, b'{"windows": "not a list"}'),
    (BatchAllocationRequest, b'{"windows": [[[1]]], "windows": [[[2]]]}'),
    (BatchAllocationRequest, b"{}"),
    (AllocationRequest, json.dumps({"demand": W, "transmission_cost": 2}).encode()),
    (AllocationRequest, b'{"demand": [[1, -Infinity]], "transmission_cost": Infinity}'),
    (AllocationRequest, b'{"demand": [[1, 2]], "transmission_cost": "0.5"}'),
    (CloudInferRequest, b'{"ddnn_version": "1", "z": [[[0.5]]], "context": [[0.1, 0.2]]}'),
    (CloudInferRequest, b'{"ddnn_version": 1, "z": [[[0.5]], []], "context": [[null]]}'),
]
INVALID_JSON = [b"", b"{", b"[1, 2]", b'{"windows": [[[1]]]} x', b"{'a': 1}", b'{"a" 1}', b"\xff"]


def outcome(parse: Any, model: type[BaseModel], body: bytes) -> Any:
    try:
        return parse(model, body).model_dump()
    except RequestValidationError as exc:
        return [(e["type"], tuple(e["loc"]), e["msg"]) for e in exc.errors()]


@pytest.mark.unit
@pytest.mark.parametrize(("model", "body"), CASES)
def test_parse_in_steps_matches_parse_body(model: type[BaseModel], body: bytes) -> None:
    expected = outcome(parse_body, model, body)
    got = outcome(parse_in_steps, model, body)
    if isinstance(expected, list):  # the same errors, maybe in another order
        assert sorted(got) == sorted(expected)
    else:
        assert got == expected


@pytest.mark.unit
@pytest.mark.parametrize("body", INVALID_JSON)
def test_parse_in_steps_invalid_json_is_json_invalid(body: bytes) -> None:
    for parse in (parse_body, parse_in_steps):
        with pytest.raises(RequestValidationError) as caught:
            parse(BatchAllocationRequest, body)
        errors = caught.value.errors()
        assert [(e["type"], tuple(e["loc"])) for e in errors] in (
            [("json_invalid", ("body",))],
            [("model_type", ("body",))],  # valid JSON, not an object
        ), (parse, errors)


def padded(payload: dict[str, Any]) -> bytes:
    """The payload with whitespace that makes it a large body (parsed in steps)."""
    text = json.dumps(payload)
    return (text[:-1] + " " * INLINE_BODY_BYTES + "}").encode()


def as_base64(windows: list[Any]) -> str:
    return base64.b64encode(np.asarray(windows, dtype="<f4").tobytes()).decode()


@pytest.mark.integration
def test_post_large_bodies_answer_like_small_ones(client: TestClient) -> None:
    windows = [demand_payload(N, K, seed=s) for s in range(3)]
    headers = {"content-type": "application/json"}
    for path, payload in [
        ("/v1/allocations", {"demand": windows[0], "policy": "local"}),
        ("/v1/allocations/batch", {"windows": windows, "policy": "local"}),
        ("/v1/allocations/batch", {"windows": [windows[0], [[1.0]]], "policy": "local"}),
        ("/v1/allocations/batch", {"windows_base64": as_base64(windows), "policy": "local"}),
        ("/v1/allocations/batch", {"windows_base64": "AAA=" + as_base64(windows)}),
        ("/v1/allocations", {"demand": windows[0], "transmission_cost": -1}),
    ]:
        small = client.post(path, json=payload)
        large = client.post(path, content=padded(payload), headers=headers)
        assert large.status_code == small.status_code, large.text
        if small.status_code == 200:
            for key in ("results", "allocation"):
                assert large.json().get(key) == small.json().get(key)
        else:
            assert large.json()["message"] == small.json()["message"]
