"""Domain orchestration of one allocation call: decode -> predict -> encode. No FastAPI here.

- decode: the request's demand (data units, K lists of N samples per window) is checked against
  the loaded model's K and N, for finiteness and for negative values, then scaled with the
  bundle's per-VNF scaler into the model's (B, N, K) float32 input;
- predict: one edge pass and one policy pass for the whole batch, then one cloud call for the
  remote subset (one round trip for the batch); if the cloud fails or is too slow, those
  samples take the local exit and the rationale says why;
- encode: the response models of service.schemas: the allocation mapped back to data units,
  the decision, the exit, the rationale and the latency breakdown. The models holding a big
  payload (the batch's results, the cloud's y) are built with `model_construct`, which skips
  re-validating it; the small per-sample ones with their constructors, which pydantic-core
  runs in about half the time model_construct's Python loop takes (1.0-1.3 us vs 2.0-2.6 us).

Every decision goes through the policy table (ddnn.policies): one `Evidence` per batch, the
knobs resolved by `resolve_knobs` (the request's C_T, else the settings, else the bundle), and
`policy.decide`; no rule is written here.

The allocation is the model's output mapped back with the scaler's inverse, NOT clipped: a
model may answer slightly below zero for a VNF whose demand is near zero, and hiding that would
hide a model problem; clients that need a floor apply it themselves (documented in the API).
"""

from __future__ import annotations

import asyncio
import binascii
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import torch

from ddnn.config import ConfigError, DDNNConfig
from ddnn.model import DDNN, EdgeModel
from ddnn.offloader import Offloader
from ddnn.policies import (
    COST_AWARE,
    RANDOM,
    Decision,
    Evidence,
    Knobs,
    Policy,
    PolicyDefaults,
    PolicyOverrides,
    online_policy,
    resolve_knobs,
)
from ddnn.windows import MinMaxScaler
from service.cloud import CloudLink, CloudUnavailable, LocalCloud, call_with_timeout
from service.schemas import (
    AllocationResponse,
    AllocationResult,
    BatchAllocationResponse,
    CloudInferRequest,
    CloudInferResponse,
    LatencyBreakdown,
    ModelVersions,
    Rationale,
    Where,
)

FLOAT32_BYTES = 4
MAX_DEMAND = 1e30  # larger values overflow float32 once scaled
INLINE_ROWS = 32  # bigger batches run their tensor work on a worker thread


class InvalidDemand(ValueError):
    """The request's windows do not fit the loaded model; the message names what is wrong."""


class BatchTooLarge(ValueError):
    """More windows than the batch limit."""


class CloudVersionMismatch(ValueError):
    """A cloud call for another DDNN version than the one this cloud serves."""


@dataclass(frozen=True)
class PolicyOptions:
    """The service's policy settings: the policy of a request that names none, the knobs the
    settings set (None falls through to the bundle's defaults), the random policy's generator."""

    default_policy: Policy
    overrides: PolicyOverrides
    rng: np.random.Generator
    # numpy generators are not thread-safe, and batches decide on worker threads
    rng_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class ServingPair:
    """A loaded DDNN + offloader pair on its device, with what the hot path needs precomputed."""

    config: DDNNConfig
    edge: EdgeModel
    cloud: LocalCloud
    offloaders: dict[str, Offloader]
    scaler: MinMaxScaler
    device: torch.device
    ddnn_name: str
    ddnn_version: str
    ddnn_run_id: str | None
    offloader_name: str
    offloader_version: str
    offloader_run_id: str | None
    alias: str
    defaults: PolicyDefaults  # the bundle's knobs: the classifier's C_T, eta, ml threshold
    low: np.ndarray = field(init=False)  # (K,) float32 scaler minimum
    inv_span: np.ndarray = field(init=False)  # (K,) float32 1 / (max - min)
    model_versions: ModelVersions = field(init=False)  # one instance, in every answer
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        self.low = self.scaler.minimum.astype(np.float32)
        self.inv_span = (1.0 / (self.scaler.maximum - self.scaler.minimum)).astype(np.float32)
        self.model_versions = ModelVersions(
            ddnn=self.ddnn_version, offloader=self.offloader_version, alias=self.alias
        )

    @property
    def n_steps(self) -> int:
        return self.config.n_steps

    @property
    def n_vnfs(self) -> int:
        return self.config.n_vnfs

    @property
    def uplink_bytes_per_sample(self) -> int:
        return self.config.uplink_floats * FLOAT32_BYTES

    def versions(self) -> ModelVersions:
        return self.model_versions

    async def close(self) -> None:
        await self.cloud.close()


def place_models(
    ddnn: DDNN, offloaders: dict[str, Offloader], device: torch.device
) -> tuple[DDNN, dict[str, Offloader]]:
    """Move to the device, eval mode, and one warm-up pass so the first request is not slow."""
    ddnn = ddnn.to(device).eval()
    placed = {key: net.to(device).eval() for key, net in offloaders.items()}
    config = ddnn.config
    with torch.inference_mode():
        x = torch.zeros(2, config.n_steps, config.n_vnfs, device=device)
        out = ddnn.edge(x)
        ddnn.cloud(out.z, out.context)
        for net in placed.values():
            net.score(x)
    return ddnn, placed


# --------------------------------------------------------------------------------------------
# decode


def decode_demand(demand: Sequence[Sequence[float]], pair: ServingPair) -> np.ndarray:
    """One request's K lists of N samples -> (1, K, N) float64, checked."""
    _check_window_shape(demand, pair, "demand")
    windows = np.asarray(demand, dtype=np.float64)[None]
    _check_values(windows, single=True)
    return windows


def decode_windows(
    windows: Sequence[Sequence[Sequence[float]]] | None,
    windows_base64: str | None,
    pair: ServingPair,
    max_batch: int,
) -> np.ndarray:
    """A batch request's windows (JSON lists or base64 float32) -> (B, K, N), checked."""
    if (windows is None) == (windows_base64 is None):
        raise InvalidDemand("give exactly one of `windows` and `windows_base64`")
    if windows is not None:
        if len(windows) > max_batch:
            raise BatchTooLarge(f"batch of {len(windows)} windows exceeds the limit of {max_batch}")
        array = _stack_windows(windows, pair)
    else:
        array = _decode_base64(windows_base64 or "", pair, max_batch)
    _check_values(array, single=False)
    return array


def _stack_windows(windows: Sequence[Sequence[Sequence[float]]], pair: ServingPair) -> np.ndarray:
    try:
        array = np.asarray(windows, dtype=np.float64)
    except ValueError:
        array = np.empty(0)  # ragged: the loop below names the offending window
    if array.shape != (len(windows), pair.n_vnfs, pair.n_steps):
        for b, window in enumerate(windows):
            _check_window_shape(window, pair, f"windows[{b}]")
        raise InvalidDemand(f"windows have shape {array.shape}, expected (B, K, N)")
    return array


def _decode_base64(text: str, pair: ServingPair, max_batch: int) -> np.ndarray:
    k, n = pair.n_vnfs, pair.n_steps
    per_window = k * n * FLOAT32_BYTES
    size = len(text) * 3 // 4 - text[-2:].count("=")
    if size // per_window > max_batch:
        raise BatchTooLarge(
            f"batch of {size // per_window} windows exceeds the limit of {max_batch}"
        )
    try:  # strict: no stray characters (b64decode(validate=True) is ~10x slower on MBs)
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidDemand(f"windows_base64 is not valid base64: {exc}") from exc
    if not raw or len(raw) % per_window:
        raise InvalidDemand(
            f"windows_base64 decodes to {len(raw)} bytes, not a positive multiple of "
            f"K*N*4 = {per_window} (float32 windows of shape (K={k}, N={n}))"
        )
    return np.frombuffer(raw, dtype="<f4").reshape(-1, k, n)


def _check_window_shape(window: Sequence[Sequence[float]], pair: ServingPair, where: str) -> None:
    k, n = pair.n_vnfs, pair.n_steps
    if len(window) != k:
        raise InvalidDemand(
            f"{where} holds {len(window)} lists; the model needs K={k} (one list of N={n} "
            f"samples per VNF, oldest first)"
        )
    for row, samples in enumerate(window):
        if len(samples) != n:
            raise InvalidDemand(
                f"{where}[{row}] holds {len(samples)} samples; the model needs N={n} per VNF "
                f"(K={k} lists, oldest first)"
            )


def _check_values(windows: np.ndarray, *, single: bool) -> None:
    """Finite, >= 0 and not absurdly large: two vectorised reductions (NaN fails both), then a
    precise message on failure."""
    low, high = float(windows.min()), float(windows.max())
    if low >= 0 and high <= MAX_DEMAND:
        return
    ok = windows >= 0  # False for NaN as well as for negatives
    problems = ~ok | (np.abs(np.nan_to_num(windows, nan=0.0)) > MAX_DEMAND)
    b, k, n = (int(i) for i in np.argwhere(problems)[0])
    where = f"demand[{k}][{n}]" if single else f"windows[{b}][{k}][{n}]"
    value = float(windows[b, k, n])
    if not np.isfinite(value):
        raise InvalidDemand(f"{where} is {value}: demand must be finite numbers (no NaN or inf)")
    if value < 0:
        raise InvalidDemand(f"{where} = {value:g} is negative: demand must be >= 0")
    raise InvalidDemand(f"{where} = {value:g} is too large (at most {MAX_DEMAND:g})")


def scale_windows(windows: np.ndarray, pair: ServingPair) -> torch.Tensor:
    """(B, K, N) data units -> (B, N, K) float32 model input on the pair's device."""
    out = np.empty((windows.shape[0], pair.n_steps, pair.n_vnfs), dtype=np.float32)
    np.subtract(windows.transpose(0, 2, 1), pair.low, out=out, casting="same_kind")
    out *= pair.inv_span
    tensor = torch.from_numpy(out)
    return tensor if pair.device.type == "cpu" else tensor.to(pair.device, non_blocking=True)


# --------------------------------------------------------------------------------------------
# predict


def knobs_for(
    pair: ServingPair, options: PolicyOptions, requested_cost: float | None = None
) -> Knobs:
    """The knobs a decision uses: the request's C_T, else the settings, else the pair's bundle.
    GET /v1/models reports what a request without knobs gets through this same call."""
    return resolve_knobs(
        pair.defaults, PolicyOverrides(transmission_cost=requested_cost), options.overrides
    )


def policy_named(name: str | None, options: PolicyOptions) -> Policy:
    """The table's policy for a request (None: the service's default)."""
    if name is None:
        return options.default_policy
    try:
        return online_policy(name)
    except ConfigError as exc:
        raise InvalidDemand(str(exc)) from None


@dataclass
class EdgeStep:
    y_local: torch.Tensor  # (B, K)
    z: torch.Tensor  # (B, N, H_e)
    context: torch.Tensor  # (B, C)
    decision: Decision
    governing_cost: float | None  # the C_T behind the decision (None: the policy uses none)
    edge_ms: float
    decision_ms: float


@dataclass
class Prediction:
    """Everything encode needs, plus what metrics record."""

    pair: ServingPair
    step: EdgeStep
    allocation: np.ndarray  # (B, K) data units
    exit_local: np.ndarray  # (B,) bool: the decision, with fallbacks turned local
    requested_cost: float | None
    fallback: str | None = None
    fallback_kind: str | None = None
    uplink_sent: bool = False
    rtt_ms: float = 0.0
    queue_ms: float = 0.0
    cloud_ms: float = 0.0
    cloud_batch: int = 0
    total_ms: float = 0.0
    _latency: LatencyBreakdown | None = field(default=None, repr=False)  # built once, when asked

    @property
    def policy(self) -> Policy:
        return self.step.decision.policy

    def counts(self) -> list[tuple[str, str, int]]:
        """(decision, exit, samples) for the metrics."""
        local, exit_local = self.step.decision.local, self.exit_local
        return [
            ("local", "local", int(np.count_nonzero(local))),
            ("remote", "remote", int(np.count_nonzero(~exit_local))),
            ("remote", "local", int(np.count_nonzero(~local & exit_local))),
        ]

    def latency(self) -> LatencyBreakdown:
        """The breakdown of a complete prediction; the metrics and the answer share one."""
        if self._latency is None:
            self._latency = self._breakdown()
        return self._latency

    def _breakdown(self) -> LatencyBreakdown:
        return LatencyBreakdown(
            edge=round(self.step.edge_ms, 4),
            decision=round(self.step.decision_ms, 4),
            rtt=round(self.rtt_ms, 4),
            queue=round(self.queue_ms, 4),
            cloud=round(self.cloud_ms, 4),
            total=round(self.total_ms, 4),
        )


def edge_and_decide(
    pair: ServingPair,
    windows: np.ndarray,
    *,
    policy: Policy,
    knobs: Knobs,
    options: PolicyOptions,
) -> EdgeStep:
    """Scale, one edge pass, one policy pass for the whole batch (synchronous, thread-safe)."""
    with torch.inference_mode():
        started = time.perf_counter()
        x = scale_windows(windows, pair)  # (B, K, N) -> (B, N, K)
        out = pair.edge(x)
        _sync(pair.device)
        edge_done = time.perf_counter()
        evidence = Evidence(
            batch=int(x.shape[0]),
            x=x,
            edge=pair.edge,
            edge_out=out,
            offloaders=pair.offloaders,
            rng=options.rng,
        )
        if policy is RANDOM:  # it draws from the service's one generator, not thread-safe
            with options.rng_lock:
                decision = policy.decide(evidence, knobs)
        else:
            decision = policy.decide(evidence, knobs)
        decided = time.perf_counter()
    return EdgeStep(
        y_local=out.y_local,
        z=out.z,
        context=out.context,
        decision=decision,
        governing_cost=policy.governing_cost(knobs),
        edge_ms=(edge_done - started) * 1e3,
        decision_ms=(decided - edge_done) * 1e3,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


async def predict(
    *,
    pair: ServingPair,
    link: CloudLink,
    windows: np.ndarray,
    policy: str | None,
    requested_cost: float | None,
    options: PolicyOptions,
    cloud_timeout_s: float,
    started: float,
) -> Prediction:
    """Edge + policy for the batch, the cloud for its remote subset (fallback: local)."""
    chosen = policy_named(policy, options)
    knobs = knobs_for(pair, options, requested_cost)
    if windows.shape[0] > INLINE_ROWS:
        step = await asyncio.to_thread(
            edge_and_decide, pair, windows, policy=chosen, knobs=knobs, options=options
        )
    else:
        step = edge_and_decide(pair, windows, policy=chosen, knobs=knobs, options=options)
    local = step.decision.local
    prediction = Prediction(pair, step, np.empty(0), local.copy(), requested_cost)
    y = step.y_local
    remote_rows = np.flatnonzero(~local)
    if remote_rows.size:
        y = await _remote(prediction, link, remote_rows, cloud_timeout_s)
    with torch.inference_mode():
        prediction.allocation = pair.scaler.inverse(y.cpu().numpy().astype(np.float64))
    prediction.total_ms = (time.perf_counter() - started) * 1e3
    return prediction


async def _remote(
    prediction: Prediction, link: CloudLink, rows: np.ndarray, timeout_s: float
) -> torch.Tensor:
    """Send z and context of the remote rows; on failure keep the local exits and note why."""
    step, pair = prediction.step, prediction.pair
    everything = rows.size == step.z.shape[0]
    index = None if everything else torch.from_numpy(rows).to(pair.device)
    z = step.z if index is None else step.z.index_select(0, index)
    context = step.context if index is None else step.context.index_select(0, index)
    cloud_started = time.perf_counter()
    try:
        answer = await call_with_timeout(
            link, z, context, ddnn_version=pair.ddnn_version, timeout_s=timeout_s
        )
    except CloudUnavailable as exc:
        prediction.fallback = exc.reason
        prediction.fallback_kind = exc.kind
        prediction.uplink_sent = exc.sent
        prediction.rtt_ms = (time.perf_counter() - cloud_started) * 1e3
        prediction.exit_local[rows] = True
        return step.y_local
    prediction.uplink_sent = True
    prediction.rtt_ms, prediction.queue_ms = answer.rtt_ms, answer.queue_ms
    prediction.cloud_ms, prediction.cloud_batch = answer.cloud_ms, answer.batch_size
    if everything:
        return answer.y
    with torch.inference_mode():
        y = step.y_local.clone()
        y[index] = answer.y.to(y.dtype)
    return y


# --------------------------------------------------------------------------------------------
# encode


def encode_single(prediction: Prediction) -> AllocationResponse:
    """The body of POST /v1/allocations."""
    sample = _Samples(prediction)
    return AllocationResponse(
        decision=sample.decisions[0],
        exit=sample.exits[0],
        allocation=sample.allocations[0],
        rationale=sample.rationale(0),
        uplink_bytes=sample.uplink_bytes[0],
        latency_ms=prediction.latency(),
        models=prediction.pair.versions(),
    )


def encode_batch(prediction: Prediction) -> BatchAllocationResponse:
    """The body of POST /v1/allocations/batch."""
    samples = _Samples(prediction)
    results = [
        AllocationResult(
            decision=samples.decisions[i],
            exit=samples.exits[i],
            allocation=samples.allocations[i],
            rationale=samples.rationale(i),
            uplink_bytes=samples.uplink_bytes[i],
        )
        for i in range(len(samples.decisions))
    ]
    sent = int((~prediction.step.decision.local).sum()) if prediction.uplink_sent else 0
    return BatchAllocationResponse.model_construct(
        results=results,
        share_local=float(prediction.exit_local.mean()),
        uplink_bytes=sent * prediction.pair.uplink_bytes_per_sample,
        latency_ms=prediction.latency(),
        models=prediction.pair.versions(),
    )


class _Samples:
    """A prediction's per-sample answer as plain Python values (what the serializer expects)."""

    def __init__(self, prediction: Prediction) -> None:
        self.prediction = prediction
        decision = self.decision = prediction.step.decision
        policy = decision.policy
        local: list[bool] = decision.local.tolist()
        exits: list[bool] = prediction.exit_local.tolist()
        per_sample = prediction.pair.uplink_bytes_per_sample if prediction.uplink_sent else 0
        self.decisions: list[Where] = ["local" if here else "remote" for here in local]
        self.exits: list[Where] = ["local" if here else "remote" for here in exits]
        self.allocations: list[list[float]] = prediction.allocation.tolist()
        self.uplink_bytes = [0 if here else per_sample for here in local]
        self.fallbacks = [
            prediction.fallback if exit_ and not here else None
            for here, exit_ in zip(local, exits, strict=True)
        ]
        # the fixed policies have no score and no knob
        self.scores: list[float | None] = (
            [None] * len(local) if policy.fixed else decision.score.tolist()
        )
        self.threshold = None if policy.fixed else float(decision.threshold)
        self.note = _cost_note(prediction)

    def rationale(self, i: int) -> Rationale:
        decision, prediction = self.decision, self.prediction
        fallback = self.fallbacks[i]
        return Rationale(
            policy=decision.policy.name,
            score=self.scores[i],
            threshold=self.threshold,
            rule=decision.policy.rule,
            transmission_cost=prediction.step.governing_cost,
            requested_transmission_cost=prediction.requested_cost,
            fallback=fallback,
            sentence=_sentence(decision, i, fallback) + self.note,
        )


def _sentence(decision: Decision, i: int, fallback: str | None) -> str:
    if fallback is None:
        return decision.reason(i)
    policy = decision.policy
    if policy.fixed:
        chose = f"The {policy.name} policy sends every sample to the cloud"
    else:
        chose = (
            f"The {policy.name} policy chose the cloud ({policy.score_name} = "
            f"{decision.score[i]:.4g} vs threshold {decision.threshold:.4g}, {policy.rule})"
        )
    return f"{chose}, but {fallback}, so the edge answered with its local exit."


def _cost_note(prediction: Prediction) -> str:
    """Said when the requested C_T is not the one that governed the decision: the policy's
    network was trained for one C_T (the classifier) and ignores the request's."""
    requested, governing = prediction.requested_cost, prediction.step.governing_cost
    if requested is None or governing is None:
        return ""
    if math.isclose(requested, governing, rel_tol=1e-5, abs_tol=1e-8):
        return ""
    policy = prediction.policy
    return (
        f" The {policy.name} {policy.network or 'policy'} was trained for C_T = {governing:.4g}; "
        f"the requested C_T = {requested:.4g} does not change its decision (the "
        f"{COST_AWARE.name} policy applies any C_T)."
    )


# --------------------------------------------------------------------------------------------
# the cloud role


async def serve_cloud(pair: ServingPair, request: CloudInferRequest) -> CloudInferResponse:
    """POST /v1/cloud/infer: the remote exits for z computed by an edge of the same version."""
    if request.ddnn_version != pair.ddnn_version:
        raise CloudVersionMismatch(
            f"this cloud serves {pair.ddnn_name} version {pair.ddnn_version}, the edge sent z "
            f"from version {request.ddnn_version}"
        )
    config = pair.config
    z = torch.tensor(request.z, dtype=torch.float32)
    context = torch.tensor(request.context, dtype=torch.float32)
    expected_z = (z.shape[0], config.n_steps, config.edge_hidden)
    if z.ndim != 3 or tuple(z.shape) != expected_z:
        raise InvalidDemand(f"z has shape {tuple(z.shape)}, expected (B, N, H_e) = {expected_z}")
    if context.shape[0] != z.shape[0] or (
        context.numel() and context.shape[1] != config.context_size
    ):
        raise InvalidDemand(
            f"context has shape {tuple(context.shape)}, expected (B, C) = "
            f"({z.shape[0]}, {config.context_size})"
        )
    context = context.reshape(z.shape[0], config.context_size)
    if not (torch.isfinite(z).all() and torch.isfinite(context).all()):
        raise InvalidDemand("z and context must be finite numbers")
    answer = await pair.cloud.infer(z.to(pair.device), context.to(pair.device))
    return CloudInferResponse.model_construct(
        y=answer.y.cpu().tolist(),
        ddnn_version=pair.ddnn_version,
        cloud_ms=answer.cloud_ms,
        queue_ms=answer.queue_ms,
        batch_size=answer.batch_size,
    )
