"""Startup: the app serves (liveness yes, readiness no) while the first load runs, and an
impossible setting fails the start at once, naming the setting, instead of being retried."""

from __future__ import annotations

import time

import pytest
import torch
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from service.runtime import ImpossibleSetting
from tests.service.conftest import make_settings
from tests.service.test_lifecycle import SwitchableLoader, wait_ready

pytestmark = pytest.mark.integration

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")


def test_default_start_does_not_wait_for_the_models() -> None:
    assert Settings(_env_file=None).startup_load_timeout_s == 0  # type: ignore[call-arg]
    loader = SwitchableLoader()
    loader.release.clear()  # the load hangs (a registry that does not answer)
    settings = make_settings(startup_load_timeout_s=0)
    app = create_app(settings, loader=loader, resolver=None)
    started = time.monotonic()
    try:
        with TestClient(app) as client:
            assert time.monotonic() - started < 5.0  # the lifespan did not wait for the load
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "loaded" in ready.json()["reason"]
            loader.release.set()
            wait_ready(client)
    finally:
        loader.release.set()


@NO_CUDA
def test_cuda_without_cuda_fails_the_start_naming_the_setting() -> None:
    loader = SwitchableLoader()
    app = create_app(make_settings(device="cuda"), loader=loader, resolver=None)
    started = time.monotonic()
    with pytest.raises(ImpossibleSetting, match="DDNN_DEVICE=cuda"):
        with TestClient(app):
            pass
    assert time.monotonic() - started < 5.0
    assert loader.calls == 0  # not even tried: no later attempt could succeed
