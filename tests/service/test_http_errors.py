"""Bounded metric labels and clean 500s: the method label comes from a fixed set and the path
label from the route template (one bucket for unknown paths); a 500 never carries the
exception's text (the log has it, under the request id the body gives)."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from tests.factories import demand_payload
from tests.service.conftest import K, N, fake_loader, make_settings

pytestmark = pytest.mark.integration

SECRET = "token=hunter2 at /srv/ddnn/secret.py"


def series(metrics: str, name: str) -> list[str]:
    return [line for line in metrics.splitlines() if line.startswith(name + "{")]


def test_metrics_method_label_is_bounded(client: TestClient) -> None:
    for method in ("FOO", "BREW", "PROPFIND"):
        client.request(method, "/healthz")
        client.request(method, f"/nope/{method}")
    requests = series(client.get("/metrics").text, "ddnn_http_requests_total")
    methods = {re.search(r'method="([^"]*)"', line).group(1) for line in requests}  # type: ignore[union-attr]
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert any('method="other"' in line and 'endpoint="/healthz"' in line for line in requests)


def test_metrics_unknown_paths_share_one_bucket(client: TestClient) -> None:
    for i in range(5):
        assert client.get(f"/nope/{i}").status_code == 404
    requests = series(client.get("/metrics").text, "ddnn_http_requests_total")
    endpoints = {re.search(r'endpoint="([^"]*)"', line).group(1) for line in requests}  # type: ignore[union-attr]
    assert not any(e.startswith("/nope") for e in endpoints)
    assert "unmatched" in endpoints


def test_internal_error_body_has_no_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(make_settings(), loader=fake_loader(), resolver=None)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(SECRET)

    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.runtime.allocate = broken
        with caplog.at_level(logging.ERROR, logger="service.main"):
            response = client.post("/v1/allocations", json={"demand": demand_payload(N, K)})
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    request_id = re.search(r"request id ([0-9a-f]{32})", body["message"])
    assert request_id is not None, body["message"]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert request_id.group(1) in logged and "hunter2" in caplog.text
