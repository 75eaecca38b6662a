"""A DDNN that reads the target's calendar is served: each request gives the time of the slot it
allocates, the service builds the calendar columns the DDNN learned from (ddnn.windows'
with_calendar), and a request without its time is refused with the field's name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from ddnn.windows import with_calendar
from service.decode import InvalidDemand, with_target_calendar
from tests.factories import demand_payload, tiny_dataset
from tests.service.conftest import K, N, fake_loader, make_bundles, make_serving_pair
from tests.service.test_oip import infer, infer_body, outputs

pytestmark = pytest.mark.unit

ClientFactory = Callable[..., TestClient]
TIME = "2013-11-28T18:00:00Z"
SCALE = 100.0  # the test bundles' scaler: 0 .. 100 for every VNF


@pytest.fixture
def calendar_client(client_factory: ClientFactory) -> TestClient:
    return client_factory(loader=fake_loader(calendar=True))


def _single(client: TestClient, demand: list[list[float]], **fields: object) -> dict[str, object]:
    response = client.post("/v1/allocations", json={"demand": demand, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_the_model_card_says_the_model_reads_the_calendar(
    calendar_client: TestClient, client: TestClient
) -> None:
    assert calendar_client.get("/v1/models").json()["reads_calendar"] is True
    assert client.get("/v1/models").json()["reads_calendar"] is False


def test_a_request_without_its_time_is_refused_naming_the_field(
    calendar_client: TestClient,
) -> None:
    demand = demand_payload(N, K)
    response = calendar_client.post("/v1/allocations", json={"demand": demand})
    assert response.status_code == 422 and "`target_time`" in response.json()["message"]
    naive = calendar_client.post(
        "/v1/allocations", json={"demand": demand, "target_time": "2013-11-28T18:00:00"}
    )
    assert naive.status_code == 422  # no UTC offset: which hour would it be?
    batch = calendar_client.post(
        "/v1/allocations/batch", json={"windows": [demand, demand], "target_times": [TIME]}
    )
    assert batch.status_code == 422 and "1 time(s) for 2 window(s)" in batch.json()["message"]
    v2 = infer(calendar_client, infer_body(np.asarray([demand], dtype=np.float32)))
    assert v2.status_code == 400 and "parameters.target_time" in v2.json()["error"]
    bad = infer(
        calendar_client, infer_body(np.asarray([demand], dtype=np.float32), target_time="noon")
    )
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]


def test_the_served_exits_equal_the_ddnn_on_the_windows_it_learned_from(
    calendar_client: TestClient,
) -> None:
    """The service's calendar is the training data's: a window of with_calendar's data set,
    sent as demand + target_time, gets the DDNN's own exits on that window."""
    data = with_calendar(tiny_dataset(n_steps=N, n_vnfs=K))
    ddnn = make_bundles(calendar=True)[0].build().eval()
    times = data.target_times(data.test)
    for i in (0, 7, 30):
        x = torch.as_tensor(data.test.inputs[i : i + 1])  # (1, N, K + 4), demand scaled
        with torch.no_grad():
            out = ddnn(x)
        demand = (data.test.inputs[i, :, :K].T * SCALE).astype(float).tolist()
        target = np.datetime_as_string(times[i], unit="s") + "Z"
        for policy, exit_y in (("local", out.y_local), ("remote", out.y_remote)):
            assert exit_y is not None
            answer = _single(calendar_client, demand, policy=policy, target_time=target)
            expected = np.maximum(exit_y[0].numpy() * SCALE, 0.0)
            np.testing.assert_allclose(answer["allocation"], expected, rtol=1e-4, atol=1e-3)


def test_the_time_moves_the_remote_exit_only(calendar_client: TestClient) -> None:
    demand = demand_payload(N, K)
    six_hours_later = "2013-11-29T00:00:00+00:00"
    same_as_time = "2013-11-28T19:00:00+01:00"  # another offset, the same instant
    remote = [
        _single(calendar_client, demand, policy="remote", target_time=t)["allocation"]
        for t in (TIME, six_hours_later, same_as_time)
    ]
    local = [
        _single(calendar_client, demand, policy="local", target_time=t)["allocation"]
        for t in (TIME, six_hours_later)
    ]
    assert remote[0] != remote[1] and remote[0] == remote[2]
    assert local[0] == local[1]


def test_batch_and_v2_answer_as_single_requests(calendar_client: TestClient) -> None:
    demand = [demand_payload(N, K, seed=s) for s in range(3)]
    start = datetime(2013, 11, 28, 18, tzinfo=UTC)
    times = [(start + timedelta(hours=5 * s)).isoformat() for s in range(3)]
    batch = calendar_client.post(
        "/v1/allocations/batch",
        json={"windows": demand, "target_times": times, "policy": "remote"},
    )
    assert batch.status_code == 200, batch.text
    singles = [
        _single(calendar_client, d, policy="remote", target_time=t)["allocation"]
        for d, t in zip(demand, times, strict=True)
    ]
    got = [r["allocation"] for r in batch.json()["results"]]
    np.testing.assert_allclose(got, singles, rtol=1e-5)
    v2 = infer(
        calendar_client,
        infer_body(np.asarray(demand[:1], dtype=np.float32), policy="remote", target_time=TIME),
    )
    assert v2.status_code == 200, v2.text
    np.testing.assert_allclose(outputs(v2)["allocation"][0], singles[0], rtol=1e-5)


def test_the_documented_examples_give_the_time(calendar_client: TestClient) -> None:
    document = calendar_client.get("/openapi.json").json()
    for path in ("/v1/allocations", "/v1/allocations/batch"):
        schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        body = schema["schema"]
        field = "target_time" if path == "/v1/allocations" else "target_times"
        assert field in body["required"]
        for example in body["examples"]:
            response = calendar_client.post(path, json=example)
            assert response.status_code == 200, response.text


def test_the_calendar_columns_are_the_target_s_time_of_day_and_week() -> None:
    pair = make_serving_pair()
    windows = np.asarray([demand_payload(N, K)])
    # a model that does not read the calendar: the windows as they are, a time or not
    assert with_target_calendar(windows, None, pair, "target_time") is windows
    calendar_pair = make_serving_pair(calendar=True)
    with pytest.raises(InvalidDemand, match="give `target_time`"):
        with_target_calendar(windows, None, calendar_pair, "target_time")
    paris = timezone(timedelta(hours=1))
    time = datetime(2013, 11, 28, 19, tzinfo=paris)  # Thursday 18:00 UTC
    extended = with_target_calendar(windows, [time], calendar_pair, "target_time")
    assert extended.shape == (1, K + 4, N)
    np.testing.assert_array_equal(extended[:, :K], windows)
    day = 2 * np.pi * 18 / 24
    week = 2 * np.pi * 18 / (7 * 24)  # weeks count from the epoch, a Thursday 00:00 UTC
    last = extended[0, K:, -1]
    np.testing.assert_allclose(
        last, [np.sin(day), np.cos(day), np.sin(week), np.cos(week)], atol=1e-6
    )
    hour_before = 2 * np.pi * 17 / 24
    np.testing.assert_allclose(
        extended[0, K : 2 + K, -2], [np.sin(hour_before), np.cos(hour_before)], atol=1e-6
    )
