"""The HTTP contract: request and response models, with the examples shown in the OpenAPI docs.

Pydantic only (plus the policy table's names); tensors never cross this module. Shapes that
depend on the loaded model (K lists of N samples) are checked by service.allocation, which knows
K and N; here only the structure. Responses are built as these models (mypy checks the field
names; `model_construct` where a big payload would otherwise be re-validated) and rendered by
pydantic-core's serializer; tests validate real responses against them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from ddnn.policies import (
    CONFIDENCE,
    COST_AWARE,
    DEFAULT_POLICY,
    LOCAL,
    ML,
    ONLINE_POLICY_NAMES,
    REMOTE,
    OnlinePolicyName,
)
from service.precision import CloudPrecision

Where = Literal["local", "remote"]  # an exit or a decision, not a policy
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

_DEMAND_EXAMPLE: Any = [[120.5, 118.0, 131.2, 140.9], [80.1, 82.4, 79.9, 85.0]]

_DEMAND_DOC = (
    "Past demand in data units: K lists (one per VNF, in the model's VNF order) of N numbers "
    "(oldest first). Values must be finite and >= 0."
)
_POLICY_DOC = (
    f"Offloading policy, one of {', '.join(ONLINE_POLICY_NAMES)}; default: the service's "
    f"DDNN_DEFAULT_POLICY ({DEFAULT_POLICY} unless set)."
)
_COST_DOC = (
    f"Transmission cost C_T (cost units, >= 0). {COST_AWARE.name} decides remote iff the "
    f"predicted C_L - C_R exceeds it; {ML.name} uses the classifier trained for the bundle's C_T "
    "and says so, unless the bundle's classifier reads C_T (ml_reads_transmission_cost): then it "
    "reads this one."
)
_TIME_DOC = (
    "The UTC time stamp of the slot being allocated (the step after the window's last sample, "
    "ISO 8601 with its offset, e.g. 2013-11-28T18:00:00Z). Needed by a model that reads the "
    "target's calendar (GET /v1/models: reads_calendar); not used by one that does not."
)
_EXAMPLE_SENTENCE = (  # what COST_AWARE.explain writes for the example below
    f"Resolved remotely in the cloud: {COST_AWARE.score_name} = 0.21 vs threshold 0.05 "
    f"({COST_AWARE.name} policy, {COST_AWARE.rule})."
)


REQUEST_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class _Strict(BaseModel):
    """A request: no unknown fields; only finite numbers (NaN, Infinity and overflowing
    literals such as 1e999 are refused with 422, wherever they are); and what the schema
    says, no coercion (true or "1.5" is not a number)."""

    model_config = REQUEST_CONFIG


class _Answer(BaseModel):
    """A response: NaN and Infinity are rendered as JS constants (not pydantic's default null)
    so that service.deps.RawJSONResponse can find them and refuse to send the answer."""

    model_config = ConfigDict(ser_json_inf_nan="constants")


_TARGET_TIME = TypeAdapter(AwareDatetime)


def read_target_time(text: str) -> datetime:
    """A target_time given as a string elsewhere (simdjson's fast path, a /v2 parameter), read
    as the request models read it from JSON (strict: RFC 3339 with its offset); pydantic's
    ValidationError otherwise."""
    found: datetime = _TARGET_TIME.validate_json(json.dumps(text), strict=True)
    return found


class AllocationRequest(_Strict):
    model_config = ConfigDict(
        **REQUEST_CONFIG,
        json_schema_extra={
            "examples": [
                {"demand": _DEMAND_EXAMPLE, "policy": COST_AWARE.name, "transmission_cost": 0.05}
            ]
        },
    )

    demand: list[list[float]] = Field(min_length=1, description=_DEMAND_DOC)
    policy: OnlinePolicyName | None = Field(default=None, description=_POLICY_DOC)
    transmission_cost: float | None = Field(default=None, ge=0, description=_COST_DOC)
    target_time: AwareDatetime | None = Field(default=None, description=_TIME_DOC)


class BatchAllocationRequest(_Strict):
    model_config = ConfigDict(
        **REQUEST_CONFIG,
        json_schema_extra={
            "examples": [{"windows": [_DEMAND_EXAMPLE, _DEMAND_EXAMPLE], "policy": ML.name}],
            "oneOf": [  # exactly one of the two, not null
                {"required": ["windows"], "properties": {"windows": {"type": "array"}}},
                {
                    "required": ["windows_base64"],
                    "properties": {"windows_base64": {"type": "string"}},
                },
            ],
        },
    )

    windows: list[list[list[float]]] | None = Field(
        default=None, min_length=1, description="B demand windows, each as in `demand` above."
    )
    windows_base64: str | None = Field(
        default=None,
        # documented, checked by service.decode (which names what is wrong)
        json_schema_extra={"contentEncoding": "base64", "pattern": BASE64_PATTERN},
        description=(
            "Compact alternative to `windows` for high-throughput clients: base64 of "
            "little-endian float32 values in (B, K, N) C order. Give exactly one of the two."
        ),
    )
    policy: OnlinePolicyName | None = Field(default=None, description=_POLICY_DOC)
    transmission_cost: float | None = Field(default=None, ge=0, description=_COST_DOC)
    target_times: list[AwareDatetime] | None = Field(
        default=None,
        min_length=1,
        description="One `target_time` (see /v1/allocations) per window, in the windows' order.",
    )


class Rationale(_Answer):
    policy: OnlinePolicyName
    score: float | None = Field(
        description=f"What the policy compared (null for {LOCAL.name} and {REMOTE.name})."
    )
    threshold: float | None = Field(description="What the score was compared with.")
    rule: str = Field(description=f"The policy's rule, e.g. '{ML.rule}'.")
    transmission_cost: float | None = Field(
        description="The C_T that governed this decision (null if the policy does not use one)."
    )
    requested_transmission_cost: float | None = Field(
        description="The C_T the request asked for (null if it gave none)."
    )
    fallback: str | None = Field(
        description="Why the cloud was not used although the policy chose it (null otherwise)."
    )
    sentence: str = Field(description="One readable sentence explaining the answer.")


class LatencyBreakdown(_Answer):
    edge: float = Field(description="Edge model compute (ms).")
    decision: float = Field(description="Offloading decision (ms).")
    rtt: float = Field(description="Edge-cloud round trip, simulated or measured (ms).")
    queue: float = Field(description="Wait to join a cloud batch (ms).")
    cloud: float = Field(description="Cloud model compute (ms).")
    total: float = Field(description="Whole request inside the service (ms).")


class ModelVersions(_Answer):
    ddnn: str
    offloader: str
    alias: str


class AllocationResult(_Answer):
    decision: Where = Field(description="What the policy decided.")
    exit: Where = Field(description="The exit that produced the allocation (local on fallback).")
    allocation: list[float] = Field(
        description=(
            "K allocations in data units, never below zero: a model output below zero (for a "
            "VNF whose demand is near zero) is set to 0, and `clipped` says so."
        )
    )
    clipped: bool = Field(
        description="True when the model answered below zero for at least one VNF (set to 0)."
    )
    rationale: Rationale
    uplink_bytes: int = Field(description="float32 bytes of z + context sent; 0 when local.")


class AllocationResponse(AllocationResult):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "decision": "remote",
                    "exit": "remote",
                    "allocation": [131.9, 84.2],
                    "clipped": False,
                    "rationale": {
                        "policy": COST_AWARE.name,
                        "score": 0.21,
                        "threshold": 0.05,
                        "rule": COST_AWARE.rule,
                        "transmission_cost": 0.05,
                        "requested_transmission_cost": 0.05,
                        "fallback": None,
                        "sentence": _EXAMPLE_SENTENCE,
                    },
                    "latency_ms": {
                        "edge": 0.4,
                        "decision": 0.03,
                        "rtt": 42.5,
                        "queue": 1.1,
                        "cloud": 3.2,
                        "total": 47.6,
                    },
                    "uplink_bytes": 640,
                    "models": {"ddnn": "3", "offloader": "3", "alias": "champion"},
                }
            ]
        }
    )

    latency_ms: LatencyBreakdown
    models: ModelVersions


class BatchAllocationResponse(_Answer):
    results: list[AllocationResult]
    share_local: float = Field(description="Share of windows answered by the local exit.")
    clipped: int = Field(description="Windows with an allocation clipped at zero (see results).")
    uplink_bytes: int = Field(description="Total float32 bytes sent to the cloud for the batch.")
    latency_ms: LatencyBreakdown = Field(description="For the whole batch (one RTT).")
    models: ModelVersions


class CloudInferRequest(_Strict):
    model_config = ConfigDict(
        **REQUEST_CONFIG,
        json_schema_extra={
            "examples": [{"ddnn_version": "3", "z": [[[0.1], [0.2]]], "context": [[0.4, 0.5]]}]
        },
    )

    ddnn_version: str = Field(description="The DDNN version the edge that computed z runs.")
    z: list[list[list[float]]] = Field(
        min_length=1, description="(B, N, H_e) edge outputs (an LSTM's: within [-1, 1])."
    )
    context: list[list[float]] = Field(
        description="(B, C) floats that travel with z (the same B; within +-1e30)."
    )


class CloudInferResponse(_Answer):
    y: list[list[float]] = Field(description="(B, K) remote exits in normalised units.")
    ddnn_version: str
    cloud_ms: float = Field(description="Cloud compute for the batch this request joined (ms).")
    queue_ms: float = Field(description="Wait to join the batch (ms).")
    batch_size: int


class LoadedModelInfo(_Answer):
    name: str
    version: str
    run_id: str | None


class RegistryStatus(_Answer):
    reachable: bool | None = Field(
        description=(
            "Whether the alias poller's last look reached the model registry (null before its "
            "first look, or without polling: DDNN_ALIAS_POLL_INTERVAL_S=0). While false, the "
            "loaded pair keeps serving and the poller keeps trying."
        )
    )
    checked_at: str | None = Field(description="When it last looked (UTC, ISO 8601).")
    error: str | None = Field(description="Why the last look failed (null when it succeeded).")


class ModelsResponse(_Answer):
    ready: bool
    alias: str
    ddnn: LoadedModelInfo | None
    offloader: LoadedModelInfo | None
    device: str | None
    n_steps: int | None = Field(description="N: samples per VNF in a window.")
    n_vnfs: int | None = Field(description="K: VNFs per window.")
    reads_calendar: bool | None = Field(
        description=(
            "Whether the DDNN reads the target's calendar (time of day and of week): its "
            "requests then give `target_time` (`target_times` for a batch)."
        )
    )
    transmission_cost: float | None = Field(
        description=(
            "The C_T of a request that gives none: DDNN_DEFAULT_TRANSMISSION_COST, else the "
            f"bundle's (the one its {ML.name} classifier was trained for)."
        )
    )
    default_policy: OnlinePolicyName
    confidence_eta: float | None = Field(
        description=f"eta of the {CONFIDENCE.name} policy: DDNN_CONFIDENCE_ETA, else the bundle's."
    )
    uplink_bytes_per_sample: int | None
    cloud: str = Field(description="'simulated' or the cloud URL.")
    cloud_precision: CloudPrecision | None = Field(
        description=(
            "The arithmetic of the cloud half this process runs (DDNN_CLOUD_PRECISION): "
            "float32 as registered, int8 or bfloat16. null when it runs none (an edge whose "
            "cloud is remote: that cloud's /v1/models says)."
        )
    )
    role: str
    loaded_at: str | None
    last_error: str | None
    registry: RegistryStatus


class ReloadResponse(_Answer):
    reloaded: bool = Field(description="False when the alias still points at the loaded pair.")
    previous: ModelVersions | None
    current: ModelVersions


class HealthResponse(_Answer):
    status: Literal["ok"]


class ReadinessResponse(_Answer):
    ready: bool
    reason: str | None = None
    models: ModelVersions | None = None


class ErrorResponse(BaseModel):
    error: str = Field(description="A short machine-readable code, e.g. 'invalid_demand'.")
    message: str = Field(description="What was wrong, in one or more readable sentences.")
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems for validation errors."
    )
