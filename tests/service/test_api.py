"""The HTTP API in-process (TestClient runs the lifespan) on a fake loader with a tiny pair."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from ddnn.policies import (
    COST_AWARE,
    ML,
    ONLINE_POLICY_NAMES,
    Decision,
    Evidence,
    Policy,
    resolve_knobs,
)
from service.schemas import AllocationResponse, BatchAllocationResponse, ModelsResponse
from tests.factories import demand_payload
from tests.service.conftest import (
    ADMIN_KEY,
    ETA,
    TRAINED_COST,
    K,
    N,
    fake_loader,
    make_bundles,
    make_settings,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., TestClient]


def post(client: TestClient, path: str = "/v1/allocations", **body: Any) -> httpx.Response:
    return client.post(path, json=body)


def model_input(demand: list[list[float]]) -> torch.Tensor:
    """What the service feeds the model: (1, N, K) scaled with the tiny scaler (0..100)."""
    return torch.tensor(np.asarray(demand).T[None] / 100.0, dtype=torch.float32)


def model_exits(demand: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Local and remote exits in data units, straight from the bundle's model."""
    model = make_bundles()[0].build()
    with torch.inference_mode():
        out = model.edge(model_input(demand))
        remote = model.cloud(out.z, out.context)
    return out.y_local[0].numpy() * 100.0, remote[0].numpy() * 100.0


def expected_exits(demand: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """The allocations the service answers with: the exits floored at zero."""
    local, remote = model_exits(demand)
    return np.maximum(local, 0.0), np.maximum(remote, 0.0)


def bundle_decision(policy: Policy, demand: list[list[float]]) -> Decision:
    """The table's decision with the bundle's networks and default knobs, outside the service."""
    offloader = make_bundles()[1]
    evidence = Evidence(batch=1, x=model_input(demand), offloaders=offloader.build())
    return policy.decide(evidence, resolve_knobs(offloader.defaults))


def cost_aware_score(demand: list[list[float]]) -> float:
    return float(bundle_decision(COST_AWARE, demand).score[0])


# ---- the answer ------------------------------------------------------------------------------


def test_post_allocation_returns_complete_answer(client: TestClient) -> None:
    response = post(client, demand=demand_payload(N, K))
    assert response.status_code == 200
    body = AllocationResponse.model_validate(response.json())
    assert len(body.allocation) == K
    assert body.decision in ("local", "remote")
    assert body.models.ddnn == "1" and body.models.offloader == "1"
    assert body.models.alias == "champion"
    assert body.latency_ms.total >= body.latency_ms.edge > 0
    assert body.rationale.policy == "cost_aware"  # the default policy


def test_post_allocation_local_policy_answers_with_edge_exit(client: TestClient) -> None:
    demand = demand_payload(N, K, seed=3)
    response = post(client, demand=demand, policy="local")
    assert response.status_code == 200
    body = response.json()
    local, _ = expected_exits(demand)
    assert (body["decision"], body["exit"]) == ("local", "local")
    assert body["uplink_bytes"] == 0
    assert body["latency_ms"]["rtt"] == 0 and body["latency_ms"]["cloud"] == 0
    np.testing.assert_allclose(body["allocation"], local, rtol=1e-5, atol=1e-4)


def test_post_allocation_remote_policy_answers_with_cloud_exit(client: TestClient) -> None:
    demand = demand_payload(N, K, seed=4)
    response = post(client, demand=demand, policy="remote")
    assert response.status_code == 200
    body = response.json()
    local, remote = expected_exits(demand)
    assert (body["decision"], body["exit"]) == ("remote", "remote")
    assert body["uplink_bytes"] == 4 * (N + K)  # z (N x 1) + context (last value per VNF)
    assert body["rationale"]["fallback"] is None
    np.testing.assert_allclose(body["allocation"], remote, rtol=1e-5, atol=1e-4)
    assert not np.allclose(local, remote)  # the two exits really differ for this model


@pytest.mark.parametrize("policy", ONLINE_POLICY_NAMES)
def test_post_allocation_rationale_matches_decision(client: TestClient, policy: str) -> None:
    response = post(client, demand=demand_payload(N, K, seed=5), policy=policy)
    assert response.status_code == 200
    body = response.json()
    rationale = body["rationale"]
    assert rationale["policy"] == policy
    score, threshold = rationale["score"], rationale["threshold"]
    local = body["decision"] == "local"
    rules: dict[str, Callable[[], bool]] = {
        "ml": lambda: score >= threshold,
        "cost_aware": lambda: score <= threshold,
        "confidence": lambda: score < threshold,
        "random": lambda: score < threshold,
        "local": lambda: True,
        "remote": lambda: False,
    }
    assert local == rules[policy]()
    if policy in ("local", "remote"):
        assert score is None and threshold is None
    else:
        assert f"{score:.4g}" in rationale["sentence"]
        assert f"{threshold:.4g}" in rationale["sentence"]
    assert ("locally" if local else "remotely") in rationale["sentence"]


def test_post_allocation_ml_score_is_the_classifier_probability(client: TestClient) -> None:
    demand = demand_payload(N, K, seed=6)
    response = post(client, demand=demand, policy="ml")
    assert response.status_code == 200
    rationale = response.json()["rationale"]
    expected = bundle_decision(ML, demand)
    assert rationale["score"] == pytest.approx(float(expected.score[0]), abs=1e-6)
    assert rationale["threshold"] == pytest.approx(expected.threshold)
    assert rationale["transmission_cost"] == pytest.approx(TRAINED_COST)


@pytest.mark.parametrize("policy", [ML, COST_AWARE], ids=lambda p: p.name)
def test_post_allocation_serves_offloaders_that_read_the_edge(
    client_factory: ClientFactory, policy: Policy
) -> None:
    client = client_factory(loader=fake_loader(inputs="edge"))
    demand = demand_payload(N, K, seed=6)
    response = post(client, demand=demand, policy=policy.name)
    assert response.status_code == 200
    ddnn, offloader = make_bundles(inputs="edge")
    x = model_input(demand)
    with torch.inference_mode():
        out = ddnn.build().edge(x)
    evidence = Evidence(batch=1, x=x, edge_out=out, offloaders=offloader.build())
    expected = policy.decide(evidence, resolve_knobs(offloader.defaults))
    assert response.json()["rationale"]["score"] == pytest.approx(
        float(expected.score[0]), abs=1e-6
    )


def test_post_allocation_confidence_uses_bundle_eta(client: TestClient) -> None:
    response = post(client, demand=demand_payload(N, K), policy="confidence")
    assert response.status_code == 200
    assert response.json()["rationale"]["threshold"] == pytest.approx(ETA)


def test_post_allocation_transmission_cost_moves_cost_aware_decision(client: TestClient) -> None:
    demand = demand_payload(N, K, seed=7)
    score = cost_aware_score(demand)
    assert score > 0.01  # the fixture centres predicted benefits around 1
    low = post(client, demand=demand, policy="cost_aware", transmission_cost=score / 2)
    high = post(client, demand=demand, policy="cost_aware", transmission_cost=score * 2)
    assert low.status_code == 200 and high.status_code == 200
    assert low.json()["decision"] == "remote"  # cheap link: the cloud's benefit is worth it
    assert high.json()["decision"] == "local"  # expensive link: stay at the edge
    assert low.json()["rationale"]["threshold"] == pytest.approx(score / 2)
    assert high.json()["rationale"]["transmission_cost"] == pytest.approx(score * 2)
    assert low.json()["rationale"]["score"] == pytest.approx(score, abs=1e-5)


def test_post_allocation_ml_with_other_cost_says_what_it_was_trained_for(
    client: TestClient,
) -> None:
    response = post(client, demand=demand_payload(N, K), policy="ml", transmission_cost=0.7)
    assert response.status_code == 200
    rationale = response.json()["rationale"]
    assert rationale["transmission_cost"] == pytest.approx(TRAINED_COST)
    assert rationale["requested_transmission_cost"] == pytest.approx(0.7)
    assert "trained for C_T = 0.1" in rationale["sentence"]
    assert "cost_aware" in rationale["sentence"]


def test_post_allocation_ml_that_reads_c_t_decides_at_the_requested_cost(
    client_factory: ClientFactory,
) -> None:
    client = client_factory(loader=fake_loader(reads_transmission_cost=True))
    demand = demand_payload(N, K, seed=6)
    classifier = make_bundles(reads_transmission_cost=True)[1].build()["ml"]
    scores = []
    for requested, governing in ((None, TRAINED_COST), (0.0, 0.0), (50.0, 50.0)):
        body = {} if requested is None else {"transmission_cost": requested}
        response = post(client, demand=demand, policy="ml", **body)
        assert response.status_code == 200
        rationale = response.json()["rationale"]
        with torch.inference_mode():
            expected = classifier.score(model_input(demand), transmission_cost=governing)
        assert rationale["score"] == pytest.approx(float(expected[0]), abs=1e-6)
        assert rationale["transmission_cost"] == pytest.approx(governing)
        assert "trained for" not in rationale["sentence"]
        scores.append(rationale["score"])
    assert scores[1] != pytest.approx(scores[2], abs=1e-6)  # the request's C_T is read


def test_post_allocation_default_cost_from_settings(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(default_transmission_cost=123.0))
    response = post(client, demand=demand_payload(N, K), policy="cost_aware")
    assert response.status_code == 200
    assert response.json()["rationale"]["threshold"] == pytest.approx(123.0)
    assert response.json()["decision"] == "local"


@pytest.mark.parametrize(
    ("overrides", "cost", "eta"),
    [
        ({}, TRAINED_COST, ETA),  # the bundle's defaults
        ({"default_transmission_cost": 0.3, "confidence_eta": 0.02}, 0.3, 0.02),  # the settings
        ({"confidence_eta": 0.02}, TRAINED_COST, 0.02),  # each knob falls through on its own
    ],
)
def test_get_models_and_decisions_agree_on_knobs(
    client_factory: ClientFactory, overrides: dict[str, float], cost: float, eta: float
) -> None:
    client = client_factory(make_settings(**overrides))
    models = client.get("/v1/models")
    cost_aware = post(client, demand=demand_payload(N, K), policy="cost_aware")
    confidence = post(client, demand=demand_payload(N, K), policy="confidence")
    assert models.status_code == cost_aware.status_code == confidence.status_code == 200
    reported = ModelsResponse.model_validate(models.json())
    assert reported.transmission_cost == pytest.approx(cost)
    assert reported.confidence_eta == pytest.approx(eta)
    assert cost_aware.json()["rationale"]["threshold"] == pytest.approx(cost)
    assert cost_aware.json()["rationale"]["transmission_cost"] == pytest.approx(cost)
    assert confidence.json()["rationale"]["threshold"] == pytest.approx(eta)


def test_post_allocation_requested_cost_beats_setting(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(default_transmission_cost=0.3))
    response = post(client, demand=demand_payload(N, K), policy="cost_aware", transmission_cost=0.7)
    assert response.status_code == 200
    rationale = response.json()["rationale"]
    assert rationale["threshold"] == pytest.approx(0.7)
    assert rationale["transmission_cost"] == pytest.approx(0.7)
    assert rationale["requested_transmission_cost"] == pytest.approx(0.7)
    assert client.get("/v1/models").json()["transmission_cost"] == pytest.approx(0.3)


@pytest.mark.parametrize("policy", ONLINE_POLICY_NAMES)
def test_post_batch_answer_fits_schema_for_every_policy(client: TestClient, policy: str) -> None:
    windows = [demand_payload(N, K, seed=s) for s in range(4)]
    response = post(client, "/v1/allocations/batch", windows=windows, policy=policy)
    assert response.status_code == 200
    body = BatchAllocationResponse.model_validate(response.json())
    assert [r.rationale.policy for r in body.results] == [policy] * len(windows)
    assert len(body.results) == len(windows)


# ---- errors ----------------------------------------------------------------------------------


def test_post_allocation_wrong_k_names_expected_k(client: TestClient) -> None:
    response = post(client, demand=demand_payload(N, K)[:3])
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_demand"
    assert "K=4" in body["message"] and "holds 3 lists" in body["message"]


def test_post_allocation_wrong_n_names_row_and_expected_n(client: TestClient) -> None:
    demand = demand_payload(N, K)
    demand[2] = demand[2][:-1]
    response = post(client, demand=demand)
    assert response.status_code == 422
    message = response.json()["message"]
    assert "demand[2]" in message and "N=12" in message and "holds 11 samples" in message


@pytest.mark.parametrize(
    ("literal", "word"), [("NaN", "nan"), ("Infinity", "inf"), ("1e999", "inf")]
)
def test_post_allocation_non_finite_demand_rejected(
    client: TestClient, literal: str, word: str
) -> None:
    demand = demand_payload(N, K)
    text = str(demand).replace(str(demand[1][5]), literal, 1)
    response = client.post(
        "/v1/allocations",
        content=f'{{"demand": {text}}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    message = response.json()["message"]
    assert "demand[1][5]" in message and word in message and "finite" in message


def test_post_allocation_negative_demand_rejected(client: TestClient) -> None:
    demand = demand_payload(N, K)
    demand[3][0] = -2.5
    response = post(client, demand=demand)
    assert response.status_code == 422
    assert "demand[3][0] = -2.5 is negative" in response.json()["message"]


def test_post_allocation_unknown_policy_rejected(client: TestClient) -> None:
    response = post(client, demand=demand_payload(N, K), policy="oracle")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["message"].startswith("policy:") and "'cost_aware'" in body["message"]
    assert body["detail"][0]["loc"] == ["body", "policy"]


@pytest.mark.parametrize("path", ["/v1/allocations", "/v1/allocations/batch"])
@pytest.mark.parametrize("policy", ["oracle", "nope", "ML"])
def test_post_allocation_unknown_policy_lists_the_table(
    client: TestClient, path: str, policy: str
) -> None:
    window = demand_payload(N, K)
    body = {"demand": window} if path == "/v1/allocations" else {"windows": [window]}
    response = client.post(path, json={**body, "policy": policy})
    assert response.status_code == 422
    message = response.json()["message"]
    assert message.startswith("policy:")
    for name in ONLINE_POLICY_NAMES:
        assert f"'{name}'" in message
    assert "'oracle'" not in message  # offline only: it needs the true demand


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "demand: Field required"),
        ({"demand": [[1.0, "x"]]}, "demand[0][1]"),
        ({"demand": [[1.0] * N] * K, "transmission_cost": -1}, "transmission_cost"),
        ({"demand": [[1.0] * N] * K, "extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_post_allocation_malformed_body_rejected(
    client: TestClient, body: dict[str, Any], fragment: str
) -> None:
    response = client.post("/v1/allocations", json=body)
    assert response.status_code == 422
    assert fragment in response.json()["message"]


def test_post_allocation_invalid_json_rejected(client: TestClient) -> None:
    response = client.post("/v1/allocations", content=b"{not json")
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


def test_post_allocation_oversized_body_rejected(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(max_body_bytes=2048))
    response = post(client, demand=[[1.0] * 400] * K)
    assert response.status_code == 413
    assert "2048" in response.json()["message"]


def test_post_allocation_oversized_streamed_body_rejected(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(max_body_bytes=2048))

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        yield b'{"demand": ['
        for _ in range(100):
            yield b"[" + b"1.0," * 40 + b"1.0],"
        yield b"[1.0]]}"

    response = client.post("/v1/allocations", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_post_batch_over_limit_rejected(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(max_batch=2))
    windows = [demand_payload(N, K, seed=s) for s in range(3)]
    response = post(client, "/v1/allocations/batch", windows=windows)
    assert response.status_code == 413
    assert "3 windows exceeds the limit of 2" in response.json()["message"]


def test_post_batch_base64_over_limit_rejected(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(max_batch=2))
    payload = np.zeros((3, K, N), dtype="<f4").tobytes()
    response = post(client, "/v1/allocations/batch", windows_base64=_b64(payload))
    assert response.status_code == 413


def test_post_batch_wrong_window_shape_names_window(client: TestClient) -> None:
    windows = [demand_payload(N, K, seed=s) for s in range(3)]
    windows[1][2] = windows[1][2][:5]
    response = post(client, "/v1/allocations/batch", windows=windows)
    assert response.status_code == 422
    assert "windows[1][2] holds 5 samples" in response.json()["message"]


def test_post_batch_negative_value_names_position(client: TestClient) -> None:
    windows = [demand_payload(N, K, seed=s) for s in range(2)]
    windows[1][0][3] = -1.0
    response = post(client, "/v1/allocations/batch", windows=windows)
    assert response.status_code == 422
    assert "windows[1][0][3] = -1 is negative" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "exactly one of"),
        ({"windows": [[[1.0] * N] * K], "windows_base64": "AAAA"}, "exactly one of"),
        ({"windows_base64": "AAAA"}, "not a positive multiple"),
        ({"windows_base64": "@@@@"}, "not valid base64"),
        ({"windows_base64": "AAAA===="}, "not valid base64"),  # the schema's pattern refuses it
    ],
)
def test_post_batch_bad_windows_rejected(
    client: TestClient, body: dict[str, Any], fragment: str
) -> None:
    response = post(client, "/v1/allocations/batch", **body)
    assert response.status_code == 422
    assert fragment in response.json()["message"]


# ---- batch -----------------------------------------------------------------------------------


def test_post_batch_matches_single_answers(client: TestClient) -> None:
    windows = [demand_payload(N, K, seed=s) for s in range(5)]
    for policy in ("local", "remote"):
        batch = post(client, "/v1/allocations/batch", windows=windows, policy=policy)
        assert batch.status_code == 200
        results = BatchAllocationResponse.model_validate(batch.json()).results
        for window, result in zip(windows, results, strict=True):
            single = post(client, demand=window, policy=policy)
            assert single.status_code == 200
            np.testing.assert_allclose(result.allocation, single.json()["allocation"], rtol=1e-5)
            assert result.exit == single.json()["exit"] == policy


def test_post_batch_base64_equals_lists(client: TestClient) -> None:
    windows = [demand_payload(N, K, seed=s) for s in range(4)]
    raw = np.asarray(windows, dtype="<f4").tobytes()
    lists = post(client, "/v1/allocations/batch", windows=windows, policy="ml")
    packed = post(client, "/v1/allocations/batch", windows_base64=_b64(raw), policy="ml")
    assert lists.status_code == 200 and packed.status_code == 200
    for a, b in zip(lists.json()["results"], packed.json()["results"], strict=True):
        np.testing.assert_allclose(a["allocation"], b["allocation"], rtol=1e-5)
        assert a["decision"] == b["decision"]


def test_post_batch_mixed_decisions_use_both_exits(client: TestClient) -> None:
    windows = [demand_payload(N, K, seed=s) for s in range(16)]
    scores = sorted(cost_aware_score(w) for w in windows)
    cost = (scores[7] + scores[8]) / 2  # half the windows on each side
    response = post(
        client,
        "/v1/allocations/batch",
        windows=windows,
        policy="cost_aware",
        transmission_cost=cost,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["share_local"] == pytest.approx(0.5)
    assert body["uplink_bytes"] == 8 * 4 * (N + K)
    for window, result in zip(windows, body["results"], strict=True):
        local, remote = expected_exits(window)
        assert result["exit"] == result["decision"]
        expected = local if result["decision"] == "local" else remote
        np.testing.assert_allclose(result["allocation"], expected, rtol=1e-4, atol=1e-3)


# ---- fallback --------------------------------------------------------------------------------


def test_post_allocation_slow_cloud_falls_back_to_local(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(rtt_ms=300.0, cloud_timeout_s=0.05))
    demand = demand_payload(N, K)
    response = post(client, demand=demand, policy="remote")
    assert response.status_code == 200
    body = response.json()
    assert (body["decision"], body["exit"]) == ("remote", "local")
    assert "did not answer within 50 ms" in body["rationale"]["fallback"]
    assert "local exit" in body["rationale"]["sentence"]
    np.testing.assert_allclose(body["allocation"], expected_exits(demand)[0], rtol=1e-5, atol=1e-4)
    metrics = client.get("/metrics").text
    assert 'ddnn_cloud_fallbacks_total{reason="timeout"} 1.0' in metrics


def test_post_allocation_unreachable_cloud_falls_back_then_skips_it(
    client_factory: ClientFactory,
) -> None:
    client = client_factory(make_settings(cloud_url="http://127.0.0.1:9", cloud_retry_after_s=60))
    first = post(client, demand=demand_payload(N, K), policy="remote")
    second = post(client, demand=demand_payload(N, K), policy="remote")
    assert first.status_code == 200 and second.status_code == 200
    assert (
        first.json()["exit"] == "local" and "unreachable" in first.json()["rationale"]["fallback"]
    )
    assert first.json()["uplink_bytes"] == 0  # the connection was refused: nothing was sent
    assert "skipped for" in second.json()["rationale"]["fallback"]


# ---- models, probes, metrics, docs -----------------------------------------------------------


def test_get_models_reports_loaded_pair(client: TestClient) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200
    body = ModelsResponse.model_validate(response.json())
    assert body.ready and body.ddnn is not None and body.ddnn.version == "1"
    assert (body.n_steps, body.n_vnfs) == (N, K)
    assert body.transmission_cost == pytest.approx(TRAINED_COST)
    assert body.device == "cpu" and body.cloud == "simulated" and body.role == "both"
    assert body.cloud_precision == "float32"
    assert body.uplink_bytes_per_sample == 4 * (N + K)


def test_get_probes_when_ready(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "reason": None,
        "models": {"ddnn": "1", "offloader": "1", "alias": "champion"},
    }


def test_get_metrics_counts_requests_and_decisions(client: TestClient) -> None:
    assert post(client, demand=demand_payload(N, K), policy="local").status_code == 200
    assert post(client, demand=[[1.0]], policy="local").status_code == 422
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert (
        'ddnn_http_requests_total{endpoint="/v1/allocations",method="POST",status="200"} 1.0'
        in text
    )
    assert 'status="422"} 1.0' in text
    assert 'ddnn_decisions_total{decision="local",exit="local",policy="local"} 1.0' in text
    assert 'ddnn_stage_latency_seconds_count{stage="edge"} 1.0' in text
    assert (
        'ddnn_model_info{alias="champion",ddnn_version="1",device="cpu",offloader_version="1"} 1.0'
        in text
    )
    assert "ddnn_ready 1.0" in text


def test_get_openapi_documents_request_with_example(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    schema = paths["/v1/allocations"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert "demand" in schema["properties"] and schema["examples"]
    assert "413" in paths["/v1/allocations/batch"]["post"]["responses"]
    assert "/v1/models/reload" in paths and "/v1/cloud/infer" in paths


def test_get_unknown_path_is_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# ---- roles and the cloud endpoint ------------------------------------------------------------


def test_post_cloud_infer_returns_cloud_exit(client: TestClient) -> None:
    demand = demand_payload(N, K, seed=8)
    model = make_bundles()[0].build()
    with torch.inference_mode():
        out = model.edge(model_input(demand))
        expected = model.cloud(out.z, out.context)
    response = post(
        client,
        "/v1/cloud/infer",
        ddnn_version="1",
        z=out.z.tolist(),
        context=out.context.tolist(),
    )
    assert response.status_code == 200
    body = response.json()
    np.testing.assert_allclose(body["y"], expected.numpy(), rtol=1e-5, atol=1e-6)
    assert body["ddnn_version"] == "1" and body["batch_size"] == 1


def test_post_cloud_infer_other_version_conflicts(client: TestClient) -> None:
    response = post(
        client, "/v1/cloud/infer", ddnn_version="7", z=[[[0.0]] * N], context=[[0.0] * K]
    )
    assert response.status_code == 409
    assert "version 1" in response.json()["message"] and "version 7" in response.json()["message"]


def test_post_cloud_infer_wrong_shape_rejected(client: TestClient) -> None:
    response = post(
        client, "/v1/cloud/infer", ddnn_version="1", z=[[[0.0]] * 3], context=[[0.0] * K]
    )
    assert response.status_code == 422
    assert "expected (B, N, H_e)" in response.json()["message"]


def test_post_allocation_absent_in_cloud_role(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(role="cloud"))
    assert post(client, demand=demand_payload(N, K)).status_code == 404
    assert client.get("/readyz").status_code == 200


def test_post_cloud_infer_absent_in_edge_role(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(role="edge"))
    response = post(
        client, "/v1/cloud/infer", ddnn_version="1", z=[[[0.0]] * N], context=[[0.0] * K]
    )
    assert response.status_code == 404
    assert post(client, demand=demand_payload(N, K)).status_code == 200


# ---- admin -----------------------------------------------------------------------------------


def test_post_reload_without_key_unauthorized(client: TestClient) -> None:
    response = client.post("/v1/models/reload")
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["message"]


def test_post_reload_wrong_key_forbidden(client: TestClient) -> None:
    response = client.post("/v1/models/reload", headers={"X-API-Key": "wrong"})
    assert response.status_code == 403
    assert response.json()["message"] == "wrong X-API-Key"


def test_post_reload_disabled_without_configured_key(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(admin_api_key=None))
    response = client.post("/v1/models/reload", headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 403
    assert "DDNN_ADMIN_API_KEY" in response.json()["message"]


def test_post_reload_same_versions_reports_unchanged(client: TestClient) -> None:
    response = client.post("/v1/models/reload", headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 200
    assert response.json()["reloaded"] is False
    assert response.json()["current"]["ddnn"] == "1"


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


def test_allocation_values_are_finite_json(client: TestClient) -> None:
    response = post(client, demand=demand_payload(N, K), policy="remote")
    assert response.status_code == 200
    assert all(math.isfinite(v) for v in response.json()["allocation"])


def test_post_reload_dependency_override_settings_checked(client: TestClient) -> None:
    from service.deps import get_app_settings

    app = client.app
    app.dependency_overrides[get_app_settings] = lambda: make_settings(admin_api_key="other")  # type: ignore[attr-defined]
    try:
        response = client.post("/v1/models/reload", headers={"X-API-Key": ADMIN_KEY})
        assert response.status_code == 403
        assert client.post("/v1/models/reload", headers={"X-API-Key": "other"}).status_code == 200
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("otel", "looked_up"), [(False, False), (True, True)])
def test_fastapi_telemetry_is_looked_up_per_request_only_when_set(
    client_factory: Callable[..., TestClient],
    monkeypatch: pytest.MonkeyPatch,
    otel: bool,
    looked_up: bool,
) -> None:
    """DDNN_OTEL=false (the default): no OpenTelemetry provider lookup on a request."""
    from opentelemetry import trace

    client = client_factory(make_settings(otel=otel))
    lookups: list[int] = []
    provider = trace.get_tracer_provider

    def counted() -> trace.TracerProvider:
        lookups.append(1)
        return provider()

    monkeypatch.setattr(trace, "get_tracer_provider", counted)
    assert client.post("/v1/allocations", json={"demand": demand_payload(N, K)}).status_code == 200
    assert bool(lookups) is looked_up
