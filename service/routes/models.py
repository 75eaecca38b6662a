"""GET /v1/models (what is loaded) and POST /v1/models/reload (admin: swap to the alias's pair)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from service.deps import AdminDep, ReloadError, RuntimeDep, SettingsDep
from service.schemas import ErrorResponse, ModelsResponse, ReloadResponse

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelsResponse, summary="The loaded model pair and its settings")
async def get_models(runtime: RuntimeDep, settings: SettingsDep) -> ModelsResponse:
    pair = runtime.pair
    body: dict[str, object] = {
        "ready": pair is not None,
        "alias": settings.alias,
        "ddnn": None,
        "offloader": None,
        "device": None,
        "n_steps": None,
        "n_vnfs": None,
        "transmission_cost": None,
        "default_policy": settings.default_policy,
        "confidence_eta": settings.confidence_eta,
        "uplink_bytes_per_sample": None,
        "cloud": runtime.cloud_description(),
        "role": settings.role,
        "loaded_at": None,
        "last_error": runtime.last_error,
    }
    if pair is not None:
        body.update(
            ddnn={"name": pair.ddnn_name, "version": pair.ddnn_version, "run_id": pair.ddnn_run_id},
            offloader={
                "name": pair.offloader_name,
                "version": pair.offloader_version,
                "run_id": pair.offloader_run_id,
            },
            device=str(pair.device),
            n_steps=pair.n_steps,
            n_vnfs=pair.n_vnfs,
            transmission_cost=(
                settings.default_transmission_cost
                if settings.default_transmission_cost is not None
                else pair.transmission_cost
            ),
            confidence_eta=settings.confidence_eta or pair.confidence_eta,
            uplink_bytes_per_sample=pair.uplink_bytes_per_sample,
            loaded_at=pair.loaded_at,
        )
    return ModelsResponse.model_validate(body)


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
async def reload_models(runtime: RuntimeDep) -> ReloadResponse:
    try:
        previous, current, changed = await runtime.reload()
    except ReloadError as exc:
        raise HTTPException(
            status_code=exc.status,
            detail={"error": "reload_failed", "message": f"{exc}; the previous pair keeps serving"},
        ) from None
    return ReloadResponse.model_validate(
        {
            "reloaded": changed,
            "previous": previous.versions() if previous is not None else None,
            "current": current.versions(),
        }
    )
