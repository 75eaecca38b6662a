"""The one rule for the device a caller asks for; ddnn's models never choose a device themselves.

The training jobs (``--device``) and the service (``DDNN_DEVICE``) both resolve through here:
``auto`` is CUDA when a CUDA device is available, else the CPU; ``cuda`` without CUDA is an
error at once (never retried), because no later attempt can make it available.
"""

from __future__ import annotations

from typing import Literal

import torch

from ddnn.config import ConfigError

DeviceChoice = Literal["auto", "cpu", "cuda"]
DEVICE_CHOICES: tuple[DeviceChoice, ...] = ("auto", "cpu", "cuda")


def resolve_device(requested: str) -> torch.device:
    """`auto` -> cuda if available else cpu; `cuda` without CUDA raises ConfigError."""
    if requested not in DEVICE_CHOICES:
        raise ConfigError(f"unknown device {requested!r}; choose one of {list(DEVICE_CHOICES)}")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but CUDA is not available on this machine")
    return torch.device(requested)
