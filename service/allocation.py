"""Domain orchestration of one allocation call: decode -> predict -> encode. No FastAPI here.

- decode (service.decode): the request's demand checked and scaled into the model's input;
- predict: one edge pass and one policy pass for the whole batch, then one cloud call for the
  remote subset (one round trip for the batch); if the cloud fails or is too slow, those
  samples take the local exit and the rationale says why. On the CPU the edge passes of small
  requests ready at the same moment are stacked into one (service.coalesce), after which each
  request decides on its own rows;
- encode: the response models of service.schemas: the allocation mapped back to data units,
  the decision, the exit, the rationale and the latency breakdown. The models holding a big
  payload (the batch's results, the cloud's y) are built with `model_construct`, which skips
  re-validating it; the small per-sample ones with their constructors, which pydantic-core
  runs in about half the time model_construct's Python loop takes (1.0-1.3 us vs 2.0-2.6 us).

Every decision goes through the policy table (ddnn.policies): one `Evidence` per batch, the
knobs resolved by `resolve_knobs` (the request's C_T, else the settings, else the bundle), and
`policy.decide`; no rule is written here.

The allocation is the model's output mapped back with the scaler's inverse and floored at
zero: an allocation is an amount of compute, but a model may answer below zero for a VNF whose
demand is near zero (a flat window does it). The answer says when it was clipped (`clipped`,
and a sentence in the rationale), so a model problem is not hidden.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ddnn.config import ConfigError
from ddnn.model import EdgeOutput
from ddnn.policies import (
    COST_AWARE,
    RANDOM,
    Decision,
    Evidence,
    Knobs,
    Policy,
    PolicyOverrides,
    online_policy,
    resolve_knobs,
)
from service.cloud import CloudLink, CloudUnavailable, call_with_timeout
from service.coalesce import EdgeCoalescer
from service.decode import InvalidDemand, decode_cloud_inputs, scale_windows
from service.pair import PolicyOptions, ServingPair
from service.schemas import (
    AllocationResponse,
    AllocationResult,
    BatchAllocationResponse,
    CloudInferResponse,
    LatencyBreakdown,
    Rationale,
    Where,
)

INLINE_ROWS = 32  # bigger batches run their tensor work on a worker thread


class CloudVersionMismatch(ValueError):
    """A cloud call for another DDNN version than the one this cloud serves."""


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
    remote_rows: np.ndarray  # (R,) the rows the policy sends to the cloud
    remote_index: torch.Tensor | None  # the same on the device when 0 < R < B (else None)


@dataclass
class Prediction:
    """Everything encode needs, plus what metrics record."""

    pair: ServingPair
    step: EdgeStep
    allocation: np.ndarray  # (B, K) data units, >= 0
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
    clipped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (B,)
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


@dataclass(frozen=True)
class EdgePass:
    """One edge pass over B scaled windows (possibly several requests' windows, coalesced)."""

    x: torch.Tensor  # (B, N, K) scaled windows
    out: EdgeOutput
    edge_ms: float  # the whole pass

    def rows(self, rows: slice) -> EdgePass:
        """The pass as seen by the request that owns these rows."""
        if rows.start == 0 and rows.stop == self.x.shape[0]:
            return self
        out = self.out
        with torch.inference_mode():
            mine = EdgeOutput(z=out.z[rows], context=out.context[rows], y_local=out.y_local[rows])
            return EdgePass(self.x[rows], mine, self.edge_ms)


def edge_pass(pair: ServingPair, windows: np.ndarray) -> EdgePass:
    """Scale and run the edge model over (B, K, N) windows (synchronous, thread-safe)."""
    with torch.inference_mode():
        started = time.perf_counter()
        x = scale_windows(windows, pair)  # (B, K, N) -> (B, N, K)
        out = pair.edge(x)
        _sync(pair.device)
    return EdgePass(x, out, (time.perf_counter() - started) * 1e3)


def coalescer_for(
    pair: ServingPair,
    *,
    busy: Callable[[], bool] = lambda: True,
    on_pass: Callable[[int], None] | None = None,
) -> EdgeCoalescer[EdgePass]:
    """Coalesces the inline edge passes of concurrent small requests on this pair; `busy`:
    whether requests other than the caller are in progress (else a pass runs at once)."""
    return EdgeCoalescer(
        lambda windows: edge_pass(pair, windows),
        max_rows=INLINE_ROWS,
        busy=busy,
        on_pass=on_pass,
    )


def decide(
    pair: ServingPair,
    edge: EdgePass,
    *,
    policy: Policy,
    knobs: Knobs,
    options: PolicyOptions,
) -> EdgeStep:
    """One policy pass over an edge pass's windows (synchronous, thread-safe)."""
    with torch.inference_mode():
        started = time.perf_counter()
        batch = int(edge.x.shape[0])
        evidence = Evidence(
            batch=batch,
            x=edge.x,
            edge=pair.edge,
            edge_out=edge.out,
            offloaders=pair.offloaders,
            rng=options.rng,
            transmission_cost=knobs.transmission_cost,  # read by a classifier that reads C_T
        )
        if policy is RANDOM:  # it draws from the service's one generator, not thread-safe
            with options.rng_lock:
                decision = policy.decide(evidence, knobs)
        else:
            decision = policy.decide(evidence, knobs)
        decided = time.perf_counter()
        remote_rows = np.flatnonzero(~decision.local)
        partial = 0 < remote_rows.size < batch  # the index goes to the device here, too
        remote_index = torch.from_numpy(remote_rows).to(pair.device) if partial else None
    return EdgeStep(
        y_local=edge.out.y_local,
        z=edge.out.z,
        context=edge.out.context,
        decision=decision,
        governing_cost=policy.governing_cost(knobs),
        edge_ms=edge.edge_ms,
        decision_ms=(decided - started) * 1e3,
        remote_rows=remote_rows,
        remote_index=remote_index,
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
    edge = edge_pass(pair, windows)
    return decide(pair, edge, policy=policy, knobs=knobs, options=options)


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
    count_timeout: bool = True,
) -> Prediction:
    """Edge + policy for the batch, the cloud for its remote subset (fallback: local).

    What waits for a GPU (the edge pass with its synchronize, the copy of the answer to the
    host) runs on a worker thread, never on the event loop; on the CPU a small batch runs
    inline, cheaper than the hop to a thread, its edge pass stacked with those of the requests
    ready in the same loop iteration when the pair has a coalescer (service.coalesce)."""
    chosen = policy_named(policy, options)
    knobs = knobs_for(pair, options, requested_cost)
    on_gpu = pair.device.type != "cpu"
    if on_gpu or windows.shape[0] > INLINE_ROWS:
        step = await asyncio.to_thread(
            edge_and_decide, pair, windows, policy=chosen, knobs=knobs, options=options
        )
    elif pair.coalescer is not None:  # one pass with the concurrent requests', own decision
        edge, rows = await pair.coalescer.submit(windows)
        step = decide(pair, edge.rows(rows), policy=chosen, knobs=knobs, options=options)
    else:
        step = edge_and_decide(pair, windows, policy=chosen, knobs=knobs, options=options)
    local = step.decision.local
    prediction = Prediction(pair, step, np.empty(0), local.copy(), requested_cost)
    y = step.y_local
    if step.remote_rows.size:
        y = await _remote(prediction, link, cloud_timeout_s, count_timeout)
    allocation = (
        await asyncio.to_thread(to_data_units, pair, y) if on_gpu else to_data_units(pair, y)
    )
    prediction.clipped = np.count_nonzero(allocation < 0, axis=1)  # VNFs below zero, per window
    prediction.allocation = np.maximum(allocation, 0.0, out=allocation)  # NaN stays NaN
    prediction.total_ms = (time.perf_counter() - started) * 1e3
    return prediction


def to_data_units(pair: ServingPair, y: torch.Tensor) -> np.ndarray:
    """(B, K) model outputs -> data units on the host (from a GPU: waits for the copy)."""
    with torch.inference_mode():
        return np.asarray(pair.scaler.inverse(y.cpu().numpy().astype(np.float64)))


async def _remote(
    prediction: Prediction,
    link: CloudLink,
    timeout_s: float,
    count_timeout: bool,
) -> torch.Tensor:
    """Send z and context of the remote rows; on failure keep the local exits and note why."""
    step, pair = prediction.step, prediction.pair
    rows, index = step.remote_rows, step.remote_index
    z = step.z if index is None else step.z.index_select(0, index)
    context = step.context if index is None else step.context.index_select(0, index)
    cloud_started = time.perf_counter()
    try:
        answer = await call_with_timeout(
            link,
            z,
            context,
            ddnn_version=pair.ddnn_version,
            timeout_s=timeout_s,
            count_timeout=count_timeout,
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
    if index is None:
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
        clipped=sample.clipped[0] > 0,
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
            clipped=samples.clipped[i] > 0,
            rationale=samples.rationale(i),
            uplink_bytes=samples.uplink_bytes[i],
        )
        for i in range(len(samples.decisions))
    ]
    sent = int((~prediction.step.decision.local).sum()) if prediction.uplink_sent else 0
    return BatchAllocationResponse.model_construct(
        results=results,
        share_local=float(prediction.exit_local.mean()),
        clipped=int(np.count_nonzero(prediction.clipped)),
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
        self.clipped: list[int] = prediction.clipped.tolist()
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
            sentence=_sentence(decision, i, fallback) + self.note + _clip_note(self.clipped[i]),
        )


def _clip_note(below_zero: int) -> str:
    if not below_zero:
        return ""
    vnfs = "VNF" if below_zero == 1 else "VNFs"
    return f" The model answered below zero for {below_zero} {vnfs}: clipped at 0."


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
    network was trained for one C_T (the paper's classifier) and ignores the request's (a
    classifier that reads C_T is governed by the request's: resolve_knobs)."""
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


async def serve_cloud(
    pair: ServingPair,
    version: str,
    z: Sequence[Sequence[Sequence[float]]] | np.ndarray,
    context: Sequence[Sequence[float]] | np.ndarray,
) -> CloudInferResponse:
    """POST /v1/cloud/infer: the remote exits for z computed by an edge of the same version
    (z and context as JSON's nested lists or a binary body's arrays; checked here)."""
    if version != pair.ddnn_version:
        raise CloudVersionMismatch(
            f"this cloud serves {pair.ddnn_name} version {pair.ddnn_version}, the edge sent z "
            f"from version {version}"
        )
    config = pair.config
    z_array, context_array = decode_cloud_inputs(
        z,
        context,
        n_steps=config.n_steps,
        edge_hidden=config.edge_hidden,
        context_size=config.context_size,
    )
    # host tensors: the cloud worker moves them to the device (not the event loop)
    answer = await pair.cloud.infer(torch.from_numpy(z_array), torch.from_numpy(context_array))
    y = answer.y if answer.y.device.type == "cpu" else await asyncio.to_thread(answer.y.cpu)
    return CloudInferResponse.model_construct(
        y=y.tolist(),
        ddnn_version=pair.ddnn_version,
        cloud_ms=answer.cloud_ms,
        queue_ms=answer.queue_ms,
        batch_size=answer.batch_size,
    )
