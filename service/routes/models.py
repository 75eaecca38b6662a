"""GET /v1/models (what is loaded) and POST /v1/models/reload (admin: swap to the alias's pair)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException

from service.allocation import knobs_for
from service.deps import AdminDep, RawJSONResponse, ReloadError, RuntimeDep, SettingsDep
from service.schemas import (
    ErrorResponse,
    LoadedModelInfo,
    ModelsResponse,
    RegistryStatus,
    ReloadResponse,
)

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelsResponse, summary="The loaded model pair and its settings")
async def get_models(runtime: RuntimeDep, settings: SettingsDep) -> RawJSONResponse:
    pair = runtime.pair
    if pair is None:  # no bundle for the knobs to fall back on yet: the settings' eta, if any
        transmission_cost, confidence_eta = None, settings.confidence_eta
    else:  # what a request that sets no knob decides with: the decisions' own resolution
        knobs = knobs_for(pair, runtime.options)
        transmission_cost, confidence_eta = knobs.transmission_cost, knobs.confidence_eta
    return RawJSONResponse(
        ModelsResponse(
            ready=pair is not None,
            alias=settings.alias,
            ddnn=None
            if pair is None
            else _info(pair.ddnn_name, pair.ddnn_version, pair.ddnn_run_id),
            offloader=None
            if pair is None
            else _info(pair.offloader_name, pair.offloader_version, pair.offloader_run_id),
            device=None if pair is None else str(pair.device),
            n_steps=None if pair is None else pair.n_steps,
            n_vnfs=None if pair is None else pair.n_vnfs,
            reads_calendar=None if pair is None else pair.reads_calendar,
            transmission_cost=transmission_cost,
            default_policy=runtime.options.default_policy.name,  # what decides, like the knobs
            confidence_eta=confidence_eta,
            uplink_bytes_per_sample=None if pair is None else pair.uplink_bytes_per_sample,
            cloud=runtime.cloud_description(),
            cloud_precision=settings.cloud_precision if runtime.runs_cloud else None,
            role=settings.role,
            loaded_at=None if pair is None else pair.loaded_at,
            last_error=runtime.last_error,
            registry=RegistryStatus(**asdict(runtime.registry)),
        )
    )


def _info(name: str, version: str, run_id: str | None) -> LoadedModelInfo:
    return LoadedModelInfo(name=name, version=version, run_id=run_id)


@router.post(
    "/reload",
    response_model=ReloadResponse,
    dependencies=[AdminDep],
    responses={
        401: {"model": ErrorResponse, "description": "No X-API-Key header."},
        403: {"model": ErrorResponse, "description": "Wrong key, or admin endpoints disabled."},
        409: {"model": ErrorResponse, "description": "The alias's pair does not belong together."},
        502: {"model": ErrorResponse, "description": "The registry failed; the old pair serves."},
    },
    summary="Load the alias's current pair, then swap to it atomically (old pair kept on error)",
)
async def reload_models(runtime: RuntimeDep) -> RawJSONResponse:
    try:
        previous, current, changed = await runtime.reload()
    except ReloadError as exc:
        raise HTTPException(
            status_code=exc.status,
            detail={"error": "reload_failed", "message": f"{exc}; the previous pair keeps serving"},
        ) from None
    return RawJSONResponse(
        ReloadResponse(
            reloaded=changed,
            previous=previous.versions() if previous is not None else None,
            current=current.versions(),
        )
    )
