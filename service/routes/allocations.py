"""POST /v1/allocations and /v1/allocations/batch: validate, call service.allocation, encode.

The hot path avoids FastAPI machinery that costs more than the model: both handlers read their
body themselves (pydantic's Rust JSON parser, several times faster than FastAPI's json.loads on
thousands of floats; the OpenAPI document still shows the request schemas), declare no
dependencies (they call service.deps.serving for the runtime and the ready pair: FastAPI's
dependency solving costs more), and return the response model built without validation and
rendered once by pydantic-core.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.allocation import INLINE_ROWS, Prediction, encode_batch, encode_single
from service.bodies import INLINE_BODY_BYTES, off_loop, parse_body, parse_in_steps, read_body
from service.decode import (
    BatchTooLarge,
    InvalidDemand,
    check_windows,
    decode_demand,
    decode_windows,
    with_target_calendar,
)
from service.deps import (
    RawJSONResponse,
    json_body_schema,
    json_bytes,
    serving,
    too_large,
    unprocessable,
)
from service.fastjson import parse_batch, parse_single
from service.pair import ServingPair
from service.schemas import (
    AllocationRequest,
    AllocationResponse,
    BatchAllocationRequest,
    BatchAllocationResponse,
    ErrorResponse,
)

router = APIRouter(prefix="/v1/allocations", tags=["allocations"])

ERRORS: dict[int | str, dict[str, object]] = {
    413: {"model": ErrorResponse, "description": "Body or batch over the limit."},
    422: {
        "model": ErrorResponse,
        "description": "Wrong shape, K/N mismatch, NaN/inf, negative demand, or unknown policy.",
    },
    503: {"model": ErrorResponse, "description": "The models are not loaded yet."},
}


def _started(request: Request) -> float:
    return float(getattr(request.state, "started", time.perf_counter()))


@router.post(
    "",
    response_model=AllocationResponse,
    responses=ERRORS,
    openapi_extra=json_body_schema(AllocationRequest),
    summary="Allocate resources for the next slot of K VNFs from their past N samples",
)
async def create_allocation(request: Request) -> RawJSONResponse:
    started = _started(request)
    runtime, pair = serving(request)
    raw = await request.body()
    # a well-formed window takes simdjson's fast path (~3x faster); a large body the steps
    fast = parse_single(raw, pair.n_vnfs, pair.n_steps) if len(raw) <= INLINE_BODY_BYTES else None
    body = fast.request if fast is not None else await read_body(AllocationRequest, raw)
    try:
        windows = (
            check_windows(fast.windows, single=True)
            if fast is not None
            else decode_demand(body.demand, pair)
        )
        times = None if body.target_time is None else [body.target_time]
        windows = with_target_calendar(windows, times, pair, "target_time")
    except InvalidDemand as exc:
        raise unprocessable(str(exc)) from None
    prediction = await runtime.allocate(pair, windows, body.policy, body.transmission_cost, started)
    return RawJSONResponse(encode_single(prediction))


@router.post(
    "/batch",
    response_model=BatchAllocationResponse,
    responses=ERRORS,
    openapi_extra=json_body_schema(BatchAllocationRequest),
    summary="Allocate for many windows at once (one edge pass, one cloud round trip)",
)
async def create_allocations(request: Request) -> Response:
    """A large body is read and decoded, and a large answer encoded, on a worker thread, in
    steps that leave the event loop free (service.bodies)."""
    started = _started(request)
    runtime, pair = serving(request)
    raw = await request.body()
    max_batch = runtime.settings.max_batch
    if len(raw) <= INLINE_BODY_BYTES:
        body, windows = _read_batch(raw, pair, max_batch, parse_body)
    else:
        body, windows = await off_loop(_read_batch, raw, pair, max_batch, parse_in_steps)
    prediction = await runtime.allocate(
        pair, windows, body.policy, body.transmission_cost, started, batch=True
    )
    if windows.shape[0] <= INLINE_ROWS:
        return RawJSONResponse(encode_batch(prediction))
    content = await off_loop(_render_batch, prediction)
    return Response(content, media_type="application/json")


def _read_batch(
    raw: bytes,
    pair: ServingPair,
    max_batch: int,
    parse: Callable[[type[BatchAllocationRequest], bytes], BatchAllocationRequest],
) -> tuple[BatchAllocationRequest, np.ndarray]:
    fast = parse_batch(raw, pair.n_vnfs, pair.n_steps, max_batch)  # JSON windows, well-formed
    body = fast.request if fast is not None else parse(BatchAllocationRequest, raw)
    try:
        windows = (
            check_windows(fast.windows)
            if fast is not None
            else decode_windows(body.windows, body.windows_base64, pair, max_batch)
        )
        windows = with_target_calendar(windows, body.target_times, pair, "target_times")
    except BatchTooLarge as exc:
        raise too_large(str(exc)) from None
    except InvalidDemand as exc:
        raise unprocessable(str(exc)) from None
    return body, windows


def _render_batch(prediction: Prediction) -> bytes:
    return json_bytes(encode_batch(prediction))
