"""The cloud half's numeric precision for serving (``DDNN_CLOUD_PRECISION``).

``float32`` serves the registered weights as they are. ``int8`` applies PyTorch's dynamic
quantization to the cloud's LSTM and Linear layers (weights stored as int8, activations
quantized on the fly): a CPU-only lever, whose test-cost change and speed versus float32
``bench/quantization.py`` measures (bench/results.md). The edge half is never quantized: z must be
exactly what the registered edge computes, for every cloud that receives it.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from torch import nn

from ddnn.model import CloudModel

CloudPrecision = Literal["float32", "int8"]


class PrecisionError(ValueError):
    """A precision the device cannot serve."""


def cloud_for_serving(
    model: CloudModel, precision: CloudPrecision, device: torch.device
) -> CloudModel:
    """The cloud model as it will serve: as registered, or dynamically quantized to int8."""
    if precision == "float32":
        return model
    if device.type != "cpu":
        raise PrecisionError(
            f"DDNN_CLOUD_PRECISION=int8 is PyTorch's dynamic quantization, which runs on the CPU "
            f"only; the models are on {device}: set DDNN_DEVICE=cpu or DDNN_CLOUD_PRECISION=float32"
        )
    return quantize_int8(model)


def quantize_int8(model: CloudModel) -> CloudModel:
    """A copy of the cloud with int8 LSTM and Linear weights (eval mode, warmed up once)."""
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized: CloudModel = torch.ao.quantization.quantize_dynamic(
            model, {nn.LSTM, nn.Linear}, dtype=torch.qint8, inplace=False
        )
        quantized.eval()
        config = model.config
        with torch.inference_mode():
            z = torch.zeros(2, config.n_steps, config.edge_hidden)
            quantized(z, torch.zeros(2, config.context_size))
    return quantized
