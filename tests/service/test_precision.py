"""DDNN_CLOUD_PRECISION: the cloud half served as registered (float32) or with int8 LSTM and
Linear weights (dynamic quantization, CPU only), close to float32's answers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import ValidationError

from ddnn.model import CloudModel
from service.precision import PrecisionError, cloud_for_serving, quantize_int8
from tests.factories import demand_payload
from tests.service.conftest import K, N, make_bundles, make_settings

ClientFactory = Callable[..., TestClient]


def cloud() -> CloudModel:
    return make_bundles()[0].build().cloud.eval()


@pytest.mark.unit
def test_int8_quantizes_the_lstms_and_linears_and_stays_close() -> None:
    model = cloud()
    quantized = quantize_int8(model)
    kinds = {type(m).__module__ for m in quantized.modules() if not list(m.children())}
    assert any("quantized.dynamic" in kind for kind in kinds)
    assert isinstance(next(iter(model.lstms)), torch.nn.LSTM)  # the original is untouched
    torch.manual_seed(0)
    z, context = torch.rand(8, N, 1), torch.rand(8, model.config.context_size)
    with torch.inference_mode():
        exact, approx = model(z, context), quantized(z, context)
    assert torch.allclose(exact, approx, atol=0.05)
    assert not torch.equal(exact, approx)


@pytest.mark.unit
def test_float32_serves_the_model_itself_and_int8_refuses_cuda() -> None:
    model = cloud()
    assert cloud_for_serving(model, "float32", torch.device("cpu")) is model
    with pytest.raises(PrecisionError, match="CPU only"):
        cloud_for_serving(model, "int8", torch.device("cuda"))
    with pytest.raises(ValidationError, match="CPU only"):
        make_settings(cloud_precision="int8", device="cuda")


@pytest.mark.integration
def test_service_with_int8_cloud_answers_close_to_float32(client_factory: ClientFactory) -> None:
    exact = client_factory(make_settings(cloud_precision="float32"))
    int8 = client_factory(make_settings(cloud_precision="int8", device="cpu"))
    body = {"windows": [demand_payload(N, K, seed=s) for s in range(4)], "policy": "remote"}
    a = exact.post("/v1/allocations/batch", json=body).json()["results"]
    b = int8.post("/v1/allocations/batch", json=body).json()["results"]
    assert [r["exit"] for r in b] == ["remote"] * 4
    np.testing.assert_allclose(
        [r["allocation"] for r in b], [r["allocation"] for r in a], rtol=0.05, atol=5.0
    )
