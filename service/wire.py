"""The binary body of POST /v1/cloud/infer (DDNN_CLOUD_BINARY, the default on the edge).

Instead of z as nested JSON lists (about 10 bytes and a float parse per value), the edge sends
``Content-Type: application/octet-stream`` with

- ``X-DDNN-Version``: the DDNN version that computed z (as ``ddnn_version`` in JSON),
- ``X-DDNN-Z-Shape``: ``B,N,H_e`` and ``X-DDNN-Context-Shape``: ``B,C`` (decimal integers),
- the body: z then context, each in C order as little-endian float32 (4 bytes a value, no
  padding), so ``4 * (B*N*H_e + B*C)`` bytes.

The answer is JSON as for a JSON request. The cloud accepts both kinds of body. No FastAPI here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

BINARY_TYPE = "application/octet-stream"
VERSION_HEADER = "X-DDNN-Version"
Z_SHAPE_HEADER = "X-DDNN-Z-Shape"
CONTEXT_SHAPE_HEADER = "X-DDNN-Context-Shape"
FLOAT32 = np.dtype("<f4")


class BadBinaryBody(ValueError):
    """A binary body that does not match its headers; the message names what is wrong."""


def encode(z: torch.Tensor, context: torch.Tensor, version: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers for z (B, N, H_e) and context (B, C)."""
    z_array = z.detach().cpu().numpy().astype(FLOAT32, copy=False)
    context_array = context.detach().cpu().numpy().astype(FLOAT32, copy=False)
    headers = {
        "Content-Type": BINARY_TYPE,
        VERSION_HEADER: version,
        Z_SHAPE_HEADER: ",".join(str(n) for n in z_array.shape),
        CONTEXT_SHAPE_HEADER: ",".join(str(n) for n in context_array.shape),
    }
    return z_array.tobytes() + context_array.tobytes(), headers


def decode(body: bytes, headers: Mapping[str, str]) -> tuple[str, np.ndarray, np.ndarray]:
    """(version, z, context) from a binary request (their shapes are checked by the caller)."""
    version = headers.get(VERSION_HEADER)
    if not version:
        raise BadBinaryBody(f"a binary body needs the {VERSION_HEADER} header")
    z_shape = _shape(headers, Z_SHAPE_HEADER, 3)
    context_shape = _shape(headers, CONTEXT_SHAPE_HEADER, 2)
    z_size, context_size = math.prod(z_shape), math.prod(context_shape)
    expected = FLOAT32.itemsize * (z_size + context_size)
    if len(body) != expected:
        raise BadBinaryBody(
            f"the binary body has {len(body)} bytes; {Z_SHAPE_HEADER} {z_shape} and "
            f"{CONTEXT_SHAPE_HEADER} {context_shape} make {expected} bytes of float32"
        )
    z = np.frombuffer(body, dtype=FLOAT32, count=z_size).reshape(z_shape)
    context = np.frombuffer(body, dtype=FLOAT32, offset=FLOAT32.itemsize * z_size)
    return version, z, context.reshape(context_shape)


def _shape(headers: Mapping[str, str], name: str, dims: int) -> tuple[int, ...]:
    text = headers.get(name)
    if text is None:
        raise BadBinaryBody(f"a binary body needs the {name} header ({dims} integers)")
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != dims or any(n < 0 for n in shape):
        raise BadBinaryBody(f"{name} must be {dims} non-negative integers, got {text!r}")
    return shape
