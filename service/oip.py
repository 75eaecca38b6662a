"""The Open Inference Protocol (KServe v2, Triton's HTTP API) beside /v1: tensors in and out.

One model is served under a stable name (the registered DDNN's, ``DDNN_DDNN_MODEL_NAME``) with
the loaded DDNN version as its only version. Its input is the demand as an FP32 tensor
[B, N, K] in data units (one row of K VNFs per time step, oldest first: the model's own layout;
/v1 takes K lists of N instead). C_T and the policy are request parameters
(``transmission_cost``, ``policy``), and so is the windows' ``target_time`` for a DDNN that reads
the calendar (RFC 3339 with its offset, as /v1's). The outputs are ``allocation`` FP32 [B, K] (data units),
``decision`` and ``exit`` BYTES [B] ("local" or "remote", as in /v1) and ``score`` FP32 [B],
the policy's score (absent for the fixed local and remote policies, which have none). The
response's parameters name the policy, its threshold, the C_T that governed the decision and,
when the cloud failed, why the edge answered.

The JSON ``data`` of a tensor is flat or nested (row-major); the binary tensor data extension is
supported both ways (``Inference-Header-Content-Length``, ``binary_data_size``,
``binary_data`` / ``binary_data_output``), which is what tritonclient uses by default.

Decisions go through service.allocation (the policy table) exactly like /v1; this module only
turns tensors into windows and a Prediction into tensors. No FastAPI here.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ddnn.policies import COST_AWARE, ONLINE_POLICY_NAMES
from registry import DDNN_MODEL_NAME
from service.allocation import Prediction
from service.config import Settings
from service.decode import InvalidDemand, check_windows
from service.schemas import read_target_time

HEADER_LENGTH = "inference-header-content-length"
INPUT = "demand"
ALLOCATION, DECISION, EXIT, SCORE = "allocation", "decision", "exit", "score"
OUTPUTS = (ALLOCATION, DECISION, EXIT, SCORE)
PLATFORM = "pytorch"
EXTENSIONS = ("binary_tensor_data",)
PARAMETERS = ("policy", "transmission_cost", "target_time")
# what tritonclient may add on its own: accepted and ignored (no sequences, priorities here)
RESERVED_PARAMETERS = frozenset(
    {"binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority",
     "timeout", "headers"}
)  # fmt: skip
RESERVED_PREFIX = "triton_"
INPUT_TYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}


class OIPError(Exception):
    """A request the protocol answers with {"error": message} and this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def served_name(settings: Settings) -> str:
    """The model's name under /v2/models: stable across reloads (the registered DDNN's)."""
    return settings.ddnn_model_name or DDNN_MODEL_NAME


# ---------------------------------------------------------------------------------------------
# the protocol's JSON objects


Parameters = dict[str, str | float | int | bool]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = Field(default=None, description="Row-major, flat or nested; absent when binary.")


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "parameters": {"policy": COST_AWARE.name, "transmission_cost": 0.05},
                    "inputs": [
                        {"name": INPUT, "shape": [1, 2, 2], "datatype": "FP32",
                         "data": [[[120.5, 80.1], [118.0, 82.4]]]}
                    ],
                }
            ]
        },
    )  # fmt: skip

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: Parameters
    outputs: list[ResponseOutput]


class OIPErrorResponse(BaseModel):
    error: str = Field(description="What was wrong, in a readable sentence.")


def model_metadata(name: str, version: str, n_steps: int, n_vnfs: int) -> ModelMetadata:
    """The model's tensors, with the loaded pair's N and K (-1: any batch size)."""
    return ModelMetadata(
        name=name,
        versions=[version],
        platform=PLATFORM,
        inputs=[MetadataTensor(name=INPUT, datatype="FP32", shape=[-1, n_steps, n_vnfs])],
        outputs=[
            MetadataTensor(name=ALLOCATION, datatype="FP32", shape=[-1, n_vnfs]),
            MetadataTensor(name=DECISION, datatype="BYTES", shape=[-1]),
            MetadataTensor(name=EXIT, datatype="BYTES", shape=[-1]),
            MetadataTensor(name=SCORE, datatype="FP32", shape=[-1]),
        ],
    )


# ---------------------------------------------------------------------------------------------
# decode: the request's tensors -> (B, K, N) windows and the knobs


@dataclass(frozen=True)
class Requested:
    """What to answer: the outputs (in order) and whether each goes as binary data."""

    names: tuple[str, ...]
    binary: tuple[bool, ...]


@dataclass(frozen=True)
class InferCall:
    request_id: str | None
    windows: np.ndarray  # (B, K, N) float64 data units, checked
    policy: str | None
    transmission_cost: float | None
    target_time: datetime | None  # of every window (a model that reads the calendar)
    requested: Requested


def parse_infer(
    body: bytes, header_length: str | None, *, n_steps: int, n_vnfs: int, max_batch: int
) -> InferCall:
    """An inference request (JSON, or JSON + binary tensors) -> windows and knobs; OIPError(400)
    names what is wrong."""
    json_part, binary = _split(body, header_length)
    try:
        request = InferenceRequest.model_validate_json(json_part)
    except ValidationError as exc:
        raise OIPError(400, f"not an inference request: {_describe(exc)}") from None
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT:
        names = [tensor.name for tensor in request.inputs]
        raise OIPError(400, f"the model has one input, {INPUT!r} [B, N, K]; got {names}")
    tensor = request.inputs[0]
    array = _tensor_values(tensor, binary, n_steps=n_steps, n_vnfs=n_vnfs, max_batch=max_batch)
    windows = np.ascontiguousarray(array.transpose(0, 2, 1))  # (B, N, K) -> (B, K, N)
    try:  # the /v1 checks, naming the element as this input's [b][n][k]
        check_windows(windows, where=lambda b, k, n: f"{INPUT}[{b}][{n}][{k}]")
    except InvalidDemand as exc:
        raise OIPError(400, str(exc)) from None
    parameters = request.parameters or {}
    policy, cost = _knobs(parameters)
    return InferCall(
        request_id=request.id,
        windows=windows,
        policy=policy,
        transmission_cost=cost,
        target_time=_target_time(parameters.get("target_time")),
        requested=_requested(request),
    )


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise OIPError(
            400, f"Inference-Header-Content-Length {header_length!r} is not a number"
        ) from None
    if not 0 < length <= len(body):
        raise OIPError(
            400,
            f"Inference-Header-Content-Length {length} is outside the body's {len(body)} bytes",
        )
    return body[:length], body[length:]


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _tensor_values(
    tensor: RequestInput, binary: bytes, *, n_steps: int, n_vnfs: int, max_batch: int
) -> np.ndarray:
    """The input's values as (B, N, K) float64, checked against its shape and the model's."""
    expected = f"[B, N={n_steps}, K={n_vnfs}]"
    dtype = INPUT_TYPES.get(tensor.datatype)
    if dtype is None:
        raise OIPError(400, f"input {INPUT!r} must be FP32 (or FP64), got {tensor.datatype}")
    shape = tensor.shape
    if len(shape) != 3 or shape[1:] != [n_steps, n_vnfs] or shape[0] < 1:
        raise OIPError(400, f"input {INPUT!r} has shape {shape}; the model takes {expected}")
    if shape[0] > max_batch:
        raise OIPError(413, f"batch of {shape[0]} windows exceeds the limit of {max_batch}")
    size = math.prod(shape)
    binary_size = (tensor.parameters or {}).get("binary_data_size")
    if binary_size is not None:
        values = _binary_values(binary, binary_size, size * dtype.itemsize, dtype)
    elif binary:
        raise OIPError(400, f"{len(binary)} binary bytes follow the JSON but no input claims them")
    else:
        values = _json_values(tensor.data, shape)
    return values.reshape(shape).astype(np.float64, copy=False)


def _binary_values(
    binary: bytes, declared: object, expected: int, dtype: np.dtype[Any]
) -> np.ndarray:
    if not isinstance(declared, int) or isinstance(declared, bool) or declared != expected:
        raise OIPError(
            400, f"binary_data_size is {declared!r}; the shape and datatype need {expected} bytes"
        )
    if len(binary) != expected:
        raise OIPError(400, f"the body holds {len(binary)} binary bytes, not {expected}")
    return np.frombuffer(binary, dtype=dtype)


def _json_values(data: Any, shape: list[int]) -> np.ndarray:
    if not isinstance(data, list):
        raise OIPError(400, f"input {INPUT!r} has no data (a flat or nested list of numbers)")
    try:
        values = np.asarray(data)
    except ValueError:  # ragged
        raise OIPError(
            400, f"input {INPUT!r}: the nested data is ragged; shape is {shape}"
        ) from None
    if values.dtype.kind not in "iuf":
        raise OIPError(400, f"input {INPUT!r}: data must be numbers")
    if values.shape != tuple(shape) and values.shape != (math.prod(shape),):
        raise OIPError(
            400,
            f"input {INPUT!r}: data of shape {list(values.shape)} does not fit shape {shape} "
            f"(give {math.prod(shape)} numbers, flat or nested, row-major)",
        )
    return values


def _knobs(parameters: dict[str, Any]) -> tuple[str | None, float | None]:
    unknown = sorted(
        key
        for key in parameters
        if key not in PARAMETERS
        and key not in RESERVED_PARAMETERS
        and not key.startswith(RESERVED_PREFIX)
    )
    if unknown:
        raise OIPError(400, f"unknown parameter(s) {unknown}; this model takes {list(PARAMETERS)}")
    policy = parameters.get("policy")
    if policy is not None and policy not in ONLINE_POLICY_NAMES:
        raise OIPError(
            400, f"parameter policy={policy!r} is not one of {', '.join(ONLINE_POLICY_NAMES)}"
        )
    cost = parameters.get("transmission_cost")
    if cost is not None:
        if isinstance(cost, bool) or not isinstance(cost, int | float):
            raise OIPError(400, f"parameter transmission_cost={cost!r} must be a number")
        if not math.isfinite(cost) or cost < 0:
            raise OIPError(400, f"parameter transmission_cost={cost!r} must be finite and >= 0")
        cost = float(cost)
    return policy, cost


def _target_time(value: Any) -> datetime | None:
    """The target_time parameter: an ISO 8601 (RFC 3339) string with its UTC offset, read as
    /v1's target_time is, or absent."""
    if value is None:
        return None
    problem = f"parameter target_time={value!r} must be an ISO 8601 time with its UTC offset"
    if not isinstance(value, str):
        raise OIPError(400, problem)
    try:
        return read_target_time(value)
    except ValidationError:
        raise OIPError(400, problem) from None


def _requested(request: InferenceRequest) -> Requested:
    default_binary = bool((request.parameters or {}).get("binary_data_output", False))
    if not request.outputs:
        return Requested(OUTPUTS, (default_binary,) * len(OUTPUTS))
    names, binary = [], []
    for output in request.outputs:
        if output.name not in OUTPUTS:
            raise OIPError(400, f"unknown output {output.name!r}; the model has {list(OUTPUTS)}")
        names.append(output.name)
        binary.append(bool((output.parameters or {}).get("binary_data", default_binary)))
    return Requested(tuple(names), tuple(binary))


# ---------------------------------------------------------------------------------------------
# encode: a Prediction -> the response's tensors


@dataclass(frozen=True)
class EncodedResponse:
    body: bytes
    header_length: int | None  # set when binary tensors follow the JSON


def encode_infer(prediction: Prediction, call: InferCall, *, model_name: str) -> EncodedResponse:
    """The outputs asked for (all by default), JSON or binary each, and the rationale's knobs
    as response parameters."""
    tensors = _output_tensors(prediction)
    outputs: list[ResponseOutput] = []
    chunks: list[bytes] = []
    for name, binary in zip(call.requested.names, call.requested.binary, strict=True):
        if name not in tensors:
            continue  # the score of a policy that has none (local, remote)
        datatype, array = tensors[name]
        if binary:
            raw = _binary(datatype, array)
            chunks.append(raw)
            outputs.append(
                ResponseOutput(
                    name=name,
                    datatype=datatype,
                    shape=list(array.shape),
                    parameters={"binary_data_size": len(raw)},
                )
            )
        else:
            data = (
                [value.decode() for value in array.tolist()]
                if datatype == "BYTES"
                else array.reshape(-1).tolist()
            )
            outputs.append(
                ResponseOutput(name=name, datatype=datatype, shape=list(array.shape), data=data)
            )
    response = InferenceResponse(
        model_name=model_name,
        model_version=prediction.pair.ddnn_version,
        id=call.request_id,
        parameters=_response_parameters(prediction),
        outputs=outputs,
    )
    head = response.__pydantic_serializer__.to_json(response, exclude_none=True)
    if not chunks:
        return EncodedResponse(head, None)
    return EncodedResponse(head + b"".join(chunks), len(head))


def _output_tensors(prediction: Prediction) -> dict[str, tuple[str, np.ndarray]]:
    decision = prediction.step.decision
    tensors = {
        ALLOCATION: ("FP32", prediction.allocation.astype(np.float32)),
        DECISION: ("BYTES", _where(decision.local)),
        EXIT: ("BYTES", _where(prediction.exit_local)),
    }
    if not decision.policy.fixed:
        tensors[SCORE] = ("FP32", np.asarray(decision.score, dtype=np.float32))
    return tensors


def _where(local: np.ndarray) -> np.ndarray:
    return np.where(local, b"local", b"remote").astype(object)


def _binary(datatype: str, array: np.ndarray) -> bytes:
    if datatype == "BYTES":  # each element: its length (uint32, little-endian), then its bytes
        return b"".join(struct.pack("<I", len(value)) + value for value in array.tolist())
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def _response_parameters(prediction: Prediction) -> Parameters:
    decision, step = prediction.step.decision, prediction.step
    parameters: Parameters = {
        "policy": decision.policy.name,
        "offloader_version": prediction.pair.offloader_version,
    }
    if not decision.policy.fixed:
        parameters["threshold"] = float(decision.threshold)
    if step.governing_cost is not None:
        parameters["transmission_cost"] = float(step.governing_cost)
    if prediction.fallback is not None:
        parameters["fallback"] = prediction.fallback
    return parameters
