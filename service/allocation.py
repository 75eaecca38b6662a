"""Domain orchestration of one allocation call: decode -> predict -> encode. No FastAPI here.

- decode: the request's demand (data units, K lists of N samples per window) is checked against
  the loaded model's K and N, for finiteness and for negative values, then scaled with the
  bundle's per-VNF scaler into the model's (B, N, K) float32 input;
- predict: one edge pass and one policy pass for the whole batch, then one cloud call for the
  remote subset (one round trip for the batch); if the cloud fails or is too slow, those
  samples take the local exit and the rationale says why;
- encode: plain dicts (the route serialises them without re-validating): the allocation mapped
  back to data units, the decision, the exit, the rationale and the latency breakdown.

The allocation is the model's output mapped back with the scaler's inverse, NOT clipped: a
model may answer slightly below zero for a VNF whose demand is near zero, and hiding that would
hide a model problem; clients that need a floor apply it themselves (documented in the API).
"""

from __future__ import annotations

import asyncio
import binascii
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from ddnn.config import DDNNConfig
from ddnn.model import DDNN, EdgeModel
from ddnn.offloader import Offloader
from ddnn.policies import (
    Decision,
    confidence_decision,
    fixed_decision,
    offloader_decision,
    random_decision,
)
from ddnn.windows import MinMaxScaler
from service.cloud import CloudLink, CloudUnavailable, LocalCloud, call_with_timeout
from service.schemas import CloudInferRequest

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
    """Service-wide policy knobs (from the settings), resolved against a pair's bundle values."""

    default_policy: str
    default_transmission_cost: float | None  # None: the bundle's C_T
    confidence_eta: float | None  # None: the bundle's eta
    random_p_local: float
    rng: np.random.Generator
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
    transmission_cost: float  # the C_T the classifier was trained for (bundle metadata)
    confidence_eta: float  # the bundle's eta
    low: np.ndarray = field(init=False)  # (K,) float32 scaler minimum
    inv_span: np.ndarray = field(init=False)  # (K,) float32 1 / (max - min)
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        self.low = self.scaler.minimum.astype(np.float32)
        self.inv_span = (1.0 / (self.scaler.maximum - self.scaler.minimum)).astype(np.float32)

    @property
    def n_steps(self) -> int:
        return self.config.n_steps

    @property
    def n_vnfs(self) -> int:
        return self.config.n_vnfs

    @property
    def uplink_bytes_per_sample(self) -> int:
        return self.config.uplink_floats * FLOAT32_BYTES

    def versions(self) -> dict[str, str]:
        return {"ddnn": self.ddnn_version, "offloader": self.offloader_version, "alias": self.alias}

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


@dataclass
class EdgeStep:
    y_local: torch.Tensor  # (B, K)
    z: torch.Tensor  # (B, N, H_e)
    context: torch.Tensor  # (B, C)
    decision: Decision
    governing_cost: float | None  # the C_T the decision used (None: the policy uses none)
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

    @property
    def policy(self) -> str:
        return self.step.decision.policy

    def counts(self) -> list[tuple[str, str, int]]:
        """(decision, exit, samples) for the metrics."""
        local, exit_local = self.step.decision.local, self.exit_local
        return [
            ("local", "local", int(np.count_nonzero(local))),
            ("remote", "remote", int(np.count_nonzero(~exit_local))),
            ("remote", "local", int(np.count_nonzero(~local & exit_local))),
        ]

    def latency(self) -> dict[str, float]:
        return {
            "edge": round(self.step.edge_ms, 4),
            "decision": round(self.step.decision_ms, 4),
            "rtt": round(self.rtt_ms, 4),
            "queue": round(self.queue_ms, 4),
            "cloud": round(self.cloud_ms, 4),
            "total": round(self.total_ms, 4),
        }


def edge_and_decide(
    pair: ServingPair,
    windows: np.ndarray,
    *,
    policy: str,
    requested_cost: float | None,
    options: PolicyOptions,
) -> EdgeStep:
    """Scale, one edge pass, one policy pass for the whole batch (synchronous, thread-safe)."""
    with torch.inference_mode():
        started = time.perf_counter()
        x = scale_windows(windows, pair)  # (B, K, N) -> (B, N, K)
        out = pair.edge(x)
        _sync(pair.device)
        edge_done = time.perf_counter()
        decision, governing = _decide(pair, x, out, policy, requested_cost, options)
        decided = time.perf_counter()
    return EdgeStep(
        y_local=out.y_local,
        z=out.z,
        context=out.context,
        decision=decision,
        governing_cost=governing,
        edge_ms=(edge_done - started) * 1e3,
        decision_ms=(decided - edge_done) * 1e3,
    )


def _decide(
    pair: ServingPair,
    x: torch.Tensor,
    out: Any,
    policy: str,
    requested_cost: float | None,
    options: PolicyOptions,
) -> tuple[Decision, float | None]:
    batch = int(x.shape[0])
    if policy == "ml":
        return offloader_decision(pair.offloaders["ml"], x), pair.transmission_cost
    if policy == "cost_aware":
        cost = requested_cost
        if cost is None:
            cost = options.default_transmission_cost
        if cost is None:
            cost = pair.transmission_cost
        return offloader_decision(pair.offloaders["cost_aware"], x, cost), cost
    if policy == "confidence":
        eta = options.confidence_eta if options.confidence_eta is not None else pair.confidence_eta
        return confidence_decision(pair.edge, out, eta), None
    if policy == "random":
        with options.rng_lock:  # numpy generators are not thread-safe
            return random_decision(batch, options.random_p_local, options.rng), None
    if policy in ("local", "remote"):
        return fixed_decision(batch, policy == "local"), None
    raise InvalidDemand(f"unknown policy {policy!r}")


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
    chosen = policy or options.default_policy
    kwargs: dict[str, Any] = {
        "policy": chosen,
        "requested_cost": requested_cost,
        "options": options,
    }
    if windows.shape[0] > INLINE_ROWS:
        step = await asyncio.to_thread(edge_and_decide, pair, windows, **kwargs)
    else:
        step = edge_and_decide(pair, windows, **kwargs)
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


def encode_single(prediction: Prediction) -> dict[str, Any]:
    """The body of POST /v1/allocations."""
    body = _results(prediction)[0]
    body["latency_ms"] = prediction.latency()
    body["models"] = prediction.pair.versions()
    return body


def encode_batch(prediction: Prediction) -> dict[str, Any]:
    """The body of POST /v1/allocations/batch."""
    results = _results(prediction)
    sent = int((~prediction.step.decision.local).sum()) if prediction.uplink_sent else 0
    return {
        "results": results,
        "share_local": float(prediction.exit_local.mean()),
        "uplink_bytes": sent * prediction.pair.uplink_bytes_per_sample,
        "latency_ms": prediction.latency(),
        "models": prediction.pair.versions(),
    }


def _results(prediction: Prediction) -> list[dict[str, Any]]:
    decision = prediction.step.decision
    fixed = decision.policy in ("local", "remote")
    scores = decision.score.tolist()
    allocations = prediction.allocation.tolist()
    exits = prediction.exit_local.tolist()
    per_sample = prediction.pair.uplink_bytes_per_sample if prediction.uplink_sent else 0
    note = _cost_note(prediction)
    threshold = None if fixed else float(decision.threshold)
    results = []
    for i, local in enumerate(decision.local.tolist()):
        fallback = prediction.fallback if exits[i] and not local else None
        results.append(
            {
                "decision": "local" if local else "remote",
                "exit": "local" if exits[i] else "remote",
                "allocation": allocations[i],
                "rationale": {
                    "policy": decision.policy,
                    "score": None if fixed else scores[i],
                    "threshold": threshold,
                    "rule": decision.rule,
                    "transmission_cost": prediction.step.governing_cost,
                    "requested_transmission_cost": prediction.requested_cost,
                    "fallback": fallback,
                    "sentence": _sentence(decision, i, fallback) + note,
                },
                "uplink_bytes": 0 if local else per_sample,
            }
        )
    return results


def _sentence(decision: Decision, i: int, fallback: str | None) -> str:
    if fallback is None:
        return decision.reason(i)
    if decision.policy == "remote":
        chose = "The remote policy sends every sample to the cloud"
    else:
        chose = (
            f"The {decision.policy} policy chose the cloud ({decision.score_name} = "
            f"{decision.score[i]:.4g} vs threshold {decision.threshold:.4g}, {decision.rule})"
        )
    return f"{chose}, but {fallback}, so the edge answered with its local exit."


def _cost_note(prediction: Prediction) -> str:
    requested, trained = prediction.requested_cost, prediction.pair.transmission_cost
    if prediction.policy != "ml" or requested is None or np.isclose(requested, trained):
        return ""
    return (
        f" The ml classifier was trained for C_T = {trained:.4g}; the requested C_T = "
        f"{requested:.4g} does not change its decision (the cost_aware policy applies any C_T)."
    )


# --------------------------------------------------------------------------------------------
# the cloud role


async def serve_cloud(pair: ServingPair, request: CloudInferRequest) -> dict[str, Any]:
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
    return {
        "y": answer.y.cpu().tolist(),
        "ddnn_version": pair.ddnn_version,
        "cloud_ms": answer.cloud_ms,
        "queue_ms": answer.queue_ms,
        "batch_size": answer.batch_size,
    }
