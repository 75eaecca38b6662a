"""The OpenAPI document states the served model: K, N (and H_e, C for the cloud) as the request
schemas' sizes, and examples built from the loaded pair, so /docs' "Try it out" and a fuzzer
(schemathesis) send what the model accepts.

``ServiceApp.openapi()`` builds the static document once (FastAPI's own) and, once a pair is
loaded, a copy for that pair (rebuilt when a reload swaps the pair). Without a pair the
document stays generic.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from fastapi import FastAPI

from ddnn.policies import COST_AWARE, ML, ONLINE_POLICY_NAMES
from service.decode import CONTEXT_LIMIT, MAX_DEMAND, Z_LIMIT
from service.oip import (
    INPUT,
    INPUT_TYPES,
    OUTPUTS,
    PARAMETERS,
    RESERVED_PARAMETERS,
    RESERVED_PREFIX,
)
from service.pair import ServingPair

Schema = dict[str, Any]


class ServiceApp(FastAPI):
    """FastAPI whose OpenAPI document follows the loaded pair (app.state.runtime.pair)."""

    _documented: tuple[ServingPair, Schema] | None = None

    def openapi(self) -> Schema:
        generic = super().openapi()
        runtime = getattr(self.state, "runtime", None)
        pair: ServingPair | None = getattr(runtime, "pair", None)
        if pair is None:
            return generic
        if self._documented is None or self._documented[0] is not pair:
            max_batch = int(self.state.settings.max_batch)
            self._documented = (pair, document_for(generic, pair, max_batch))
        return self._documented[1]


def document_for(generic: Schema, pair: ServingPair, max_batch: int) -> Schema:
    """A copy of the generic document with the pair's sizes and examples."""
    document = copy.deepcopy(generic)
    paths = document.get("paths", {})
    window = window_schema(pair)
    example = example_window(pair)
    time = _calendar_time(pair)
    single = _body_schema(paths, "/v1/allocations")
    if single is not None:
        single["properties"]["demand"] = {**single["properties"]["demand"], **window}
        single["examples"] = [
            {"demand": example, "policy": COST_AWARE.name, "transmission_cost": 0.05, **time}
        ]
        _require_times(single, "target_time", pair)
    batch = _body_schema(paths, "/v1/allocations/batch")
    if batch is not None:
        windows = {"type": "array", "minItems": 1, "maxItems": max_batch, "items": window}
        batch["properties"]["windows"]["anyOf"][0] = windows
        times = {"target_times": [time["target_time"]] * 2} if time else {}
        batch["examples"] = [{"windows": [example, example], "policy": ML.name, **times}]
        _require_times(batch, "target_times", pair)
    cloud = _body_schema(paths, "/v1/cloud/infer")
    if cloud is not None:
        _state_cloud_sizes(cloud, pair)
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        infer = _body_schema(paths, path)
        if infer is not None:
            _state_infer_sizes(infer, pair, max_batch)
    answer = document.get("components", {}).get("schemas", {}).get("AllocationResponse")
    if answer is not None:
        for shown in answer.get("examples", []):
            shown["allocation"] = [round(sum(row) / len(row), 1) for row in example]
    return document


EXAMPLE_TIME = "2013-11-28T18:00:00Z"  # a weekday evening of the Milano data's month


def _calendar_time(pair: ServingPair) -> dict[str, str]:
    """The example's target_time, for a model that reads the calendar."""
    return {"target_time": EXAMPLE_TIME} if pair.reads_calendar else {}


def _require_times(schema: Schema, field: str, pair: ServingPair) -> None:
    """A model that reads the calendar needs the request's time(s): required in its schema."""
    if pair.reads_calendar:
        schema["required"] = sorted({*schema.get("required", []), field})


def window_schema(pair: ServingPair) -> Schema:
    """K lists of N finite numbers in [0, MAX_DEMAND]: what decode accepts."""
    k, n = pair.n_vnfs, pair.n_steps
    sample = {"type": "number", "minimum": 0, "maximum": MAX_DEMAND}
    row = {"type": "array", "minItems": n, "maxItems": n, "items": sample}
    return {"type": "array", "minItems": k, "maxItems": k, "items": row}


def example_window(pair: ServingPair) -> list[list[float]]:
    """A plausible window for this pair: each VNF rising across 30-70 % of its training range."""
    n = pair.n_steps
    rows = []
    for low, high in zip(pair.scaler.minimum, pair.scaler.maximum, strict=True):
        span = float(high) - float(low)
        row = [float(low) + span * (0.3 + 0.4 * t / max(n - 1, 1)) for t in range(n)]
        rows.append([round(max(value, 0.0), 2) for value in row])
    return rows


def _state_cloud_sizes(schema: Schema, pair: ServingPair) -> None:
    config = pair.config
    n, hidden, context_size = config.n_steps, config.edge_hidden, config.context_size
    value = {"type": "number", "minimum": -Z_LIMIT, "maximum": Z_LIMIT}
    step = {"type": "array", "minItems": hidden, "maxItems": hidden, "items": value}
    sample = {"type": "array", "minItems": n, "maxItems": n, "items": step}
    properties = schema["properties"]
    properties["z"] = {**properties["z"], "items": sample}
    number = {"type": "number", "minimum": -CONTEXT_LIMIT, "maximum": CONTEXT_LIMIT}
    row = {"type": "array", "minItems": context_size, "maxItems": context_size, "items": number}
    properties["context"] = {**properties["context"], "items": row}
    schema["examples"] = [
        {
            "ddnn_version": pair.ddnn_version,
            "z": [[[0.0] * hidden] * n],
            "context": [[0.0] * context_size],
        }
    ]


def _state_infer_sizes(schema: Schema, pair: ServingPair, max_batch: int) -> None:
    """/v2 inference as this model takes it: one input `demand` [B, N, K] of demand values, the
    parameters service.oip reads (and the ones tritonclient adds), outputs by name. That the
    data holds B*N*K numbers JSON Schema cannot state (tests/e2e/schemathesis_hooks.py)."""
    n, k = pair.n_steps, pair.n_vnfs
    sizes = [
        {"type": "integer", "minimum": 1, "maximum": max_batch},
        {"type": "integer", "const": n},
        {"type": "integer", "const": k},
    ]
    value = {"type": "number", "minimum": 0, "maximum": MAX_DEMAND}
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "const": INPUT},
            "datatype": {"type": "string", "enum": sorted(INPUT_TYPES)},
            "shape": {"type": "array", "prefixItems": sizes, "minItems": 3, "maxItems": 3},
            "parameters": {"type": "object", "not": {"required": ["binary_data_size"]}},
            "data": {"type": "array", "minItems": 1, "items": value},
        },
        "additionalProperties": False,
    }
    knobs = {
        "policy": {"type": "string", "enum": list(ONLINE_POLICY_NAMES)},
        "transmission_cost": {"type": "number", "minimum": 0, "maximum": sys.float_info.max},
        "target_time": {"type": "string", "format": "date-time"},
    }
    output = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "enum": list(OUTPUTS)},
            "parameters": {"type": "object"},
        },
        "additionalProperties": False,
    }
    properties = schema["properties"]
    properties["inputs"] = {"type": "array", "minItems": 1, "maxItems": 1, "items": tensor}
    properties["parameters"] = {
        "type": "object",
        "properties": {name: knobs.get(name, {}) for name in (*PARAMETERS, *RESERVED_PARAMETERS)},
        "patternProperties": {f"^{RESERVED_PREFIX}": {}},
        "additionalProperties": False,
    }
    properties["outputs"] = {"type": "array", "items": output}
    if pair.reads_calendar:  # its windows' time: a parameter every request gives
        properties["parameters"]["required"] = ["target_time"]
        schema["required"] = sorted({*schema.get("required", []), "parameters"})


def _body_schema(paths: Schema, path: str) -> Schema | None:
    try:
        schema: Schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    except KeyError:
        return None
    return schema
