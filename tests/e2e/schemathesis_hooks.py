"""schemathesis hooks (SCHEMATHESIS_HOOKS) for what JSON Schema cannot state about a request
the service accepts; tests/e2e/test_schemathesis.py loads them.

- ``windows_base64``: base64 of float32 windows. The document states the alphabet and padding;
  that the bytes are whole (K, N) windows of finite demand >= 0 it cannot. A schema-valid case
  gets the base64 of as many such windows as its string had groups (at least one).
- ``/v1/cloud/infer``: z and context must have the same B (sizes can be stated, equality
  cannot). A schema-valid case gets its context cut or repeated to z's B (an empty one: rows
  of zeros, C = K for the test model).

- ``/v2/models/.../infer``: the input's data holds B*N*K numbers (its shape's product). A
  schema-valid case gets that many (B at most 8), flat.

Only cases that schemathesis generated as schema-valid (positive) are touched; every check
still runs on every case.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import schemathesis

K, N = 4, 12  # the test model's (tests/service/conftest.py)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    path = case.operation.path
    if path == "/v1/allocations/batch" and isinstance(case.body.get("windows_base64"), str):
        count = max(1, min(8, len(case.body["windows_base64"]) // 4))
        windows = np.random.default_rng(count).uniform(0, 100, size=(count, K, N))
        case.body["windows_base64"] = base64.b64encode(windows.astype("<f4").tobytes()).decode()
    if path == "/v1/cloud/infer":
        z, rows = case.body.get("z"), case.body.get("context")
        if isinstance(z, list) and isinstance(rows, list) and len(rows) != len(z):
            rows = rows or [[0.0] * K]  # C = K for the test model: the last value per VNF
            case.body["context"] = [rows[i % len(rows)] for i in range(len(z))]
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        _fill_tensor(case.body)
    return case


def _fill_tensor(body: dict[str, Any]) -> None:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        return
    shape = inputs[0].get("shape")
    if not isinstance(shape, list) or len(shape) != 3:
        return
    if not all(isinstance(s, int | float) and float(s).is_integer() for s in shape):
        return  # JSON Schema's integers include 3.0
    shape[:] = [min(int(shape[0]), 8), int(shape[1]), int(shape[2])]
    count = int(np.prod(shape))
    inputs[0]["data"] = np.random.default_rng(count).uniform(0, 100, size=count).tolist()
