"""The cloud half's numeric precision for serving (``DDNN_CLOUD_PRECISION``).

``float32`` serves the registered weights as they are. The others trade a little accuracy for
compute, and ``bench/quantization.py`` measures both sides against float32 (the test cost of
the remote exit on the same z, and the cloud's compute per sample; bench/results.md):

- ``int8``: PyTorch's dynamic quantization of the cloud's LSTM and Linear layers (weights
  stored as int8, activations quantized on the fly); CPU only.
- ``bfloat16``: the cloud's LSTMs (nearly all of its compute) run in bfloat16, their input cast
  down and their output back up; the normalisation of z, the FC head and the restore of the
  demand's scale stay float32. It needs hardware bfloat16: a CPU with AVX512-BF16 or AMX
  (oneDNN), or a CUDA device that supports it; elsewhere the start fails at once, since the
  emulated path would be slower than float32.

The edge half is never lowered: z must be exactly what the registered edge computes, for every
cloud that receives it.
"""

from __future__ import annotations

import copy
import warnings
from typing import Literal, cast

import torch
from torch import nn

from ddnn.model import CloudModel

CloudPrecision = Literal["float32", "int8", "bfloat16"]


class PrecisionError(ValueError):
    """A precision the device cannot serve."""


def check_precision(precision: CloudPrecision, device: torch.device) -> None:
    """PrecisionError unless `device` can serve the cloud at `precision`."""
    check_device_type(precision, device.type)
    if precision == "bfloat16" and not has_bfloat16(device):
        raise PrecisionError(
            f"DDNN_CLOUD_PRECISION=bfloat16 needs hardware bfloat16 (a CPU with AVX512-BF16 or "
            f"AMX, or a CUDA device that supports it), which {device} lacks; emulated it would "
            f"be slower than float32: set DDNN_CLOUD_PRECISION=float32"
        )


def check_device_type(precision: CloudPrecision, device_type: str) -> None:
    """The part of check_precision that the device's type decides alone (the settings check
    it when DDNN_DEVICE names one): int8 runs on the CPU only."""
    if precision == "int8" and device_type != "cpu":
        raise PrecisionError(
            f"DDNN_CLOUD_PRECISION=int8 is PyTorch's dynamic quantization, which runs on the CPU "
            f"only; the models are on {device_type}: set DDNN_DEVICE=cpu or "
            f"DDNN_CLOUD_PRECISION=float32"
        )


def has_bfloat16(device: torch.device) -> bool:
    """Whether `device` does bfloat16 in hardware (on a CPU: oneDNN's own check, which a torch
    built without oneDNN lacks)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and bool(torch.cuda.is_bf16_supported())
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return torch.backends.mkldnn.is_available() and check is not None and bool(check())


def cloud_for_serving(
    model: CloudModel, precision: CloudPrecision, device: torch.device
) -> CloudModel:
    """The cloud model as it will serve: as registered, quantized to int8 or lowered to
    bfloat16 (a copy; the registered model is untouched)."""
    check_precision(precision, device)
    if precision == "int8":
        return quantize_int8(model)
    if precision == "bfloat16":
        return lower_to_bfloat16(model)
    return model


def quantize_int8(model: CloudModel) -> CloudModel:
    """A copy of the cloud with int8 LSTM and Linear weights (eval mode, warmed up once)."""
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized: CloudModel = torch.ao.quantization.quantize_dynamic(
            model, {nn.LSTM, nn.Linear}, dtype=torch.qint8, inplace=False
        )
        quantized.eval()
        _warm_up(quantized, torch.device("cpu"))
    return quantized


class Bfloat16LSTM(nn.Module):
    """An LSTM whose weights and arithmetic are bfloat16, between float32 tensors (the LSTM it
    is given is converted in place)."""

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.lstm = lstm.to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        h, _ = self.lstm(x.to(torch.bfloat16))
        return h.to(x.dtype), None  # the state is not used by the cloud


def lower_to_bfloat16(model: CloudModel) -> CloudModel:
    """A copy of the cloud whose LSTMs run in bfloat16 (eval mode, warmed up once)."""
    lowered = copy.deepcopy(model).eval()
    lowered.lstms = nn.ModuleList(Bfloat16LSTM(cast(nn.LSTM, lstm)) for lstm in lowered.lstms)
    _warm_up(lowered, next(model.parameters()).device)
    return lowered


def _warm_up(model: CloudModel, device: torch.device) -> None:
    config = model.config
    with torch.inference_mode():
        z = torch.zeros(2, config.n_steps, config.edge_hidden, device=device)
        model(z, torch.zeros(2, config.context_size, device=device))
