"""The Open Inference Protocol (/v2) in-process: metadata, readiness, inference (JSON and binary
tensors) equal to /v1's answers, and the protocol's errors."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from registry import DDNN_MODEL_NAME, RegistryError
from service.oip import InferenceResponse, ModelMetadata
from tests.factories import demand_payload
from tests.service.conftest import K, N, make_settings

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., TestClient]
MODEL = f"/v2/models/{DDNN_MODEL_NAME}"


def windows(count: int) -> np.ndarray:
    """(B, K, N) demand windows in data units, as /v1 takes them."""
    return np.asarray([demand_payload(N, K, seed=s) for s in range(count)], dtype=np.float32)


def infer_body(batch: np.ndarray, *, nested: bool = True, **parameters: Any) -> dict[str, Any]:
    """A v2 request for (B, K, N) windows: the tensor is [B, N, K]."""
    tensor = batch.transpose(0, 2, 1)
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "demand",
                "shape": list(tensor.shape),
                "datatype": "FP32",
                "data": tensor.tolist() if nested else tensor.ravel().tolist(),
            }
        ]
    }
    if parameters:
        body["parameters"] = parameters
    return body


def infer(client: TestClient, body: dict[str, Any], path: str = MODEL) -> httpx.Response:
    return client.post(f"{path}/infer", json=body)


def outputs(response: httpx.Response) -> dict[str, Any]:
    answer = InferenceResponse.model_validate(response.json())
    return {o.name: np.asarray(o.data).reshape(o.shape) for o in answer.outputs}


# ---- health and metadata --------------------------------------------------------------------


def test_v2_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    server = client.get("/v2").json()
    assert "binary_tensor_data" in server["extensions"]


def test_v2_model_metadata_states_loaded_n_and_k(client: TestClient) -> None:
    response = client.get(MODEL)
    assert response.status_code == 200
    meta = ModelMetadata.model_validate(response.json())
    assert (meta.name, meta.versions) == (DDNN_MODEL_NAME, ["1"])
    assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [("demand", "FP32", [-1, N, K])]
    shapes = {t.name: (t.datatype, t.shape) for t in meta.outputs}
    assert shapes == {
        "allocation": ("FP32", [-1, K]),
        "decision": ("BYTES", [-1]),
        "exit": ("BYTES", [-1]),
        "score": ("FP32", [-1]),
    }
    assert client.get(f"{MODEL}/versions/1").json() == response.json()


def test_v2_model_ready_and_unknown_models(client: TestClient) -> None:
    assert client.get(f"{MODEL}/ready").status_code == 200
    assert client.get(f"{MODEL}/versions/1/ready").status_code == 200
    for path in ("/v2/models/other", "/v2/models/other/ready", f"{MODEL}/versions/7"):
        response = client.get(path)
        assert response.status_code == 404
        assert set(response.json()) == {"error"}
    wrong = infer(client, infer_body(windows(1)), path=f"{MODEL}/versions/7")
    assert wrong.status_code == 404 and "loaded: 1" in wrong.json()["error"]


def test_v2_not_ready_while_the_models_load(client_factory: ClientFactory) -> None:
    def failing(settings: object) -> Any:
        raise RegistryError("registry down")

    client = client_factory(make_settings(startup_load_timeout_s=0.05), failing)
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 400 and "registry down" in ready.json()["error"]
    assert client.get(f"{MODEL}/ready").status_code == 400
    assert client.get(MODEL).status_code == 503
    assert infer(client, infer_body(windows(1))).status_code == 503


# ---- inference equals /v1 -------------------------------------------------------------------


# deterministic policies (confidence draws MC dropout masks, random draws u)
@pytest.mark.parametrize("policy", ["ml", "cost_aware", "local", "remote"])
def test_v2_infer_equals_v1_batch(client: TestClient, policy: str) -> None:
    batch = windows(6)
    response = infer(client, infer_body(batch, policy=policy))
    assert response.status_code == 200, response.text
    got = outputs(response)
    v1 = client.post(
        "/v1/allocations/batch", json={"windows": batch.tolist(), "policy": policy}
    ).json()["results"]
    np.testing.assert_allclose(got["allocation"], [r["allocation"] for r in v1], rtol=1e-5)
    assert got["decision"].tolist() == [r["decision"] for r in v1]
    assert got["exit"].tolist() == [r["exit"] for r in v1]
    if policy in ("local", "remote"):
        assert "score" not in got  # the fixed policies have no score
    else:
        np.testing.assert_allclose(got["score"], [r["rationale"]["score"] for r in v1], rtol=1e-5)
    parameters = response.json()["parameters"]
    assert parameters["policy"] == policy
    assert response.json()["model_version"] == "1"


@pytest.mark.parametrize("policy", ["confidence", "random"])
def test_v2_infer_drawing_policies_answer_every_tensor(client: TestClient, policy: str) -> None:
    got = outputs(infer(client, infer_body(windows(3), policy=policy)))
    assert got["allocation"].shape == (3, K)
    assert got["score"].shape == got["decision"].shape == got["exit"].shape == (3,)


def test_v2_flat_data_and_transmission_cost_as_parameter(client: TestClient) -> None:
    batch = windows(8)
    for cost in (0.0, 1e6):
        nested = outputs(
            infer(client, infer_body(batch, policy="cost_aware", transmission_cost=cost))
        )
        flat = outputs(
            infer(
                client, infer_body(batch, nested=False, policy="cost_aware", transmission_cost=cost)
            )
        )
        assert nested["decision"].tolist() == flat["decision"].tolist()
        v1 = client.post(
            "/v1/allocations/batch",
            json={"windows": batch.tolist(), "policy": "cost_aware", "transmission_cost": cost},
        ).json()
        assert nested["decision"].tolist() == [r["decision"] for r in v1["results"]]
    assert set(outputs(infer(client, infer_body(batch, transmission_cost=1e6)))["decision"]) == {
        "local"
    }


def test_v2_infer_echoes_id_and_returns_requested_outputs(client: TestClient) -> None:
    body = infer_body(windows(2), policy="ml")
    body["id"] = "req-7"
    body["outputs"] = [{"name": "exit"}, {"name": "allocation"}]
    response = infer(client, body)
    assert response.status_code == 200
    assert response.json()["id"] == "req-7"
    assert [o["name"] for o in response.json()["outputs"]] == ["exit", "allocation"]


def binary_request(batch: np.ndarray, parameters: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    tensor = np.ascontiguousarray(batch.transpose(0, 2, 1), dtype="<f4")
    raw = tensor.tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "demand",
                    "shape": list(tensor.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": parameters,
        }
    ).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def decode_binary(response: httpx.Response) -> dict[str, np.ndarray]:
    length = int(response.headers["Inference-Header-Content-Length"])
    head, rest = json.loads(response.content[:length]), response.content[length:]
    decoded, offset = {}, 0
    for output in head["outputs"]:
        size = output["parameters"]["binary_data_size"]
        chunk, offset = rest[offset : offset + size], offset + size
        if output["datatype"] == "BYTES":
            values, i = [], 0
            while i < len(chunk):
                (n,) = struct.unpack_from("<I", chunk, i)
                values.append(chunk[i + 4 : i + 4 + n].decode())
                i += 4 + n
            decoded[output["name"]] = np.asarray(values)
        else:
            decoded[output["name"]] = np.frombuffer(chunk, "<f4").reshape(output["shape"])
    return decoded


def test_v2_binary_tensors_both_ways_equal_json(client: TestClient) -> None:
    batch = windows(5)
    content, headers = binary_request(batch, {"policy": "ml", "binary_data_output": True})
    response = client.post(f"{MODEL}/infer", content=content, headers=headers)
    assert response.status_code == 200, response.text
    binary = decode_binary(response)
    plain = outputs(infer(client, infer_body(batch, policy="ml")))
    np.testing.assert_array_equal(binary["allocation"], plain["allocation"].astype(np.float32))
    assert binary["decision"].tolist() == plain["decision"].tolist()
    np.testing.assert_allclose(binary["score"], plain["score"], rtol=1e-6)


# ---- errors ---------------------------------------------------------------------------------


def _bad(**changes: Any) -> dict[str, Any]:
    body = infer_body(windows(2))
    body["inputs"][0].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (_bad(name="x"), "one input, 'demand'"),
        (_bad(shape=[2, K, N]), f"[B, N={N}, K={K}]"),
        (_bad(datatype="INT8"), "FP32"),
        (_bad(data=[[1.0, 2.0], [3.0]]), "ragged"),
        (_bad(data=["a"] * (2 * N * K)), "numbers"),
        (_bad(data=[1.0] * 5), "does not fit shape"),
        (_bad(data=None), "no data"),
        ({"inputs": []}, "inputs"),
        ({**infer_body(windows(1)), "parameters": {"polcy": "ml"}}, "unknown parameter"),
        ({**infer_body(windows(1)), "parameters": {"policy": "nope"}}, "not one of"),
        ({**infer_body(windows(1)), "parameters": {"transmission_cost": -1}}, ">= 0"),
        ({**infer_body(windows(1)), "parameters": {"transmission_cost": "x"}}, "a number"),
        ({**infer_body(windows(1)), "outputs": [{"name": "y"}]}, "unknown output"),
    ],
)
def test_v2_bad_requests_answer_400_with_a_reason(
    client: TestClient, body: dict[str, Any], fragment: str
) -> None:
    response = infer(client, body)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert fragment in response.json()["error"]


def test_v2_negative_demand_names_the_element(client: TestClient) -> None:
    batch = windows(2)
    batch[1, 3, 5] = -1.0  # (b, k, n): the tensor's [1][5][3]
    response = infer(client, infer_body(batch))
    assert response.status_code == 400
    assert "demand[1][5][3] = -1 is negative" in response.json()["error"]


def test_v2_invalid_json_and_binary_mismatches(client: TestClient) -> None:
    assert client.post(f"{MODEL}/infer", content=b"{not json").status_code == 400
    content, headers = binary_request(windows(2), {})
    short = client.post(f"{MODEL}/infer", content=content[:-4], headers=headers)
    assert short.status_code == 400 and "binary bytes" in short.json()["error"]
    garbage = client.post(
        f"{MODEL}/infer", content=content, headers={"Inference-Header-Content-Length": "x"}
    )
    assert garbage.status_code == 400


def test_v2_batch_over_limit_answers_413(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(max_batch=2))
    response = infer(client, infer_body(windows(3)))
    assert response.status_code == 413 and "limit of 2" in response.json()["error"]


def test_v2_documented_in_openapi_without_dangling_refs(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "/v2/models/{name}/infer" in document["paths"]
    assert "#/$defs/" not in json.dumps(document)
