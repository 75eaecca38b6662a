"""Probes and metrics: /healthz (the process answers), /readyz (a pair is loaded), /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.deps import METRICS_CONTENT_TYPE, RawJSONResponse, RuntimeDep
from service.schemas import HealthResponse, ReadinessResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, summary="Liveness: the process answers")
async def healthz() -> RawJSONResponse:
    return RawJSONResponse(HealthResponse(status="ok"))


@router.get(
    "/readyz",
    response_model=ReadinessResponse,
    responses={503: {"model": ReadinessResponse, "description": "Not ready, with the reason."}},
    summary="Readiness: 200 once the model pair is loaded, else 503 with the reason",
)
async def readyz(runtime: RuntimeDep) -> RawJSONResponse:
    pair = runtime.pair
    if pair is None:
        return RawJSONResponse(
            ReadinessResponse(ready=False, reason=runtime.last_error, models=None),
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return RawJSONResponse(ReadinessResponse(ready=True, reason=None, models=pair.versions()))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(runtime.metrics.render(), media_type=METRICS_CONTENT_TYPE)
