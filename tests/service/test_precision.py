"""DDNN_CLOUD_PRECISION: the cloud half served as registered (float32), with int8 LSTM and
Linear weights (dynamic quantization, CPU only) or with bfloat16 LSTMs (hardware bfloat16
only), close to float32's answers; a precision the machine cannot serve fails the start."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import ValidationError

from ddnn.model import CloudModel
from service import precision
from service.precision import (
    Bfloat16LSTM,
    PrecisionError,
    cloud_for_serving,
    has_bfloat16,
    lower_to_bfloat16,
    quantize_int8,
)
from service.runtime import ImpossibleSetting, check_settings
from tests.factories import demand_payload
from tests.service.conftest import K, N, make_bundles, make_settings

ClientFactory = Callable[..., TestClient]
needs_bfloat16 = pytest.mark.skipif(
    not has_bfloat16(torch.device("cpu")), reason="this CPU has no hardware bfloat16"
)


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


@needs_bfloat16
@pytest.mark.unit
def test_bfloat16_lowers_the_lstms_only_and_stays_close() -> None:
    model = cloud()
    lowered = lower_to_bfloat16(model)
    assert all(isinstance(lstm, Bfloat16LSTM) for lstm in lowered.lstms)
    dtypes = {name: p.dtype for name, p in lowered.named_parameters()}
    assert {d for n, d in dtypes.items() if n.startswith("lstms.")} == {torch.bfloat16}
    assert {d for n, d in dtypes.items() if not n.startswith("lstms.")} == {torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the original: untouched
    torch.manual_seed(0)
    z, context = torch.rand(8, N, 1), torch.rand(8, model.config.context_size)
    with torch.inference_mode():
        exact, approx = model(z, context), lowered(z, context)
    assert approx.dtype == torch.float32
    assert torch.allclose(exact, approx, atol=0.05)
    assert not torch.equal(exact, approx)


@pytest.mark.unit
def test_a_precision_the_machine_cannot_serve_fails_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision, "has_bfloat16", lambda device: False)
    with pytest.raises(PrecisionError, match="hardware bfloat16"):
        cloud_for_serving(cloud(), "bfloat16", torch.device("cpu"))
    with pytest.raises(ImpossibleSetting, match="DDNN_CLOUD_PRECISION=bfloat16"):
        check_settings(make_settings(cloud_precision="bfloat16", device="cpu"))
    assert check_settings(make_settings(cloud_precision="int8", device="cpu")).type == "cpu"


@pytest.mark.integration
@pytest.mark.parametrize("lower", ["int8", pytest.param("bfloat16", marks=needs_bfloat16)])
def test_service_with_a_lower_precision_cloud_answers_close_to_float32(
    client_factory: ClientFactory, lower: str
) -> None:
    exact = client_factory(make_settings(cloud_precision="float32"))
    lowered = client_factory(make_settings(cloud_precision=lower, device="cpu"))
    body = {"windows": [demand_payload(N, K, seed=s) for s in range(4)], "policy": "remote"}
    a = exact.post("/v1/allocations/batch", json=body).json()["results"]
    b = lowered.post("/v1/allocations/batch", json=body).json()["results"]
    assert [r["exit"] for r in b] == ["remote"] * 4
    assert lowered.get("/v1/models").json()["cloud_precision"] == lower
    np.testing.assert_allclose(
        [r["allocation"] for r in b], [r["allocation"] for r in a], rtol=0.05, atol=5.0
    )


@pytest.mark.integration
def test_models_says_the_precision_of_the_cloud_it_runs(client_factory: ClientFactory) -> None:
    cloud = client_factory(make_settings(role="cloud", cloud_precision="int8", device="cpu"))
    assert cloud.get("/v1/models").json()["cloud_precision"] == "int8"
    edge = client_factory(  # its cloud is another process: this one runs none
        make_settings(role="edge", cloud_url="http://127.0.0.1:9", cloud_precision="int8")
    )
    assert edge.get("/v1/models").json()["cloud_precision"] is None


@pytest.mark.unit
def test_a_torch_without_onednn_has_no_cpu_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert not has_bfloat16(torch.device("cpu"))
