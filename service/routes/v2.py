"""The Open Inference Protocol (KServe v2) over HTTP: health, metadata and inference.

`/v2/health/live`, `/v2/health/ready`, `/v2` (server metadata), `/v2/models/{name}[/versions/
{version}]` (model metadata), `.../ready` and `.../infer`. Errors are the protocol's
``{"error": "..."}``: 400 a bad request, 404 an unknown model or version, 413 a batch over the
limit, 503 while the models load. The tensors' meaning: service.oip.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse, Response

from service.allocation import Prediction
from service.decode import InvalidDemand, with_target_calendar
from service.deps import RawJSONResponse, RuntimeDep
from service.oip import (
    EXTENSIONS,
    HEADER_LENGTH,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    OIPError,
    OIPErrorResponse,
    ServerMetadata,
    encode_infer,
    model_metadata,
    parse_infer,
    served_name,
)
from service.pair import ServingPair
from service.runtime import ServiceRuntime

router = APIRouter(prefix="/v2", tags=["open inference protocol (KServe v2)"])

SERVER_NAME = "ddnn-slicing-service"
SERVER_VERSION = "0.1.0"
ModelName = Annotated[str, Path(description="The served model's name (GET /v2/models/{name}).")]
ModelVersion = Annotated[str, Path(description="The loaded DDNN version (the only one served).")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    words = {
        400: "Not ready, or a bad request (the message says which).",
        404: "No such model or version.",
        413: "Batch over the limit.",
        503: "The models are not loaded yet.",
    }
    return {s: {"model": OIPErrorResponse, "description": words[s]} for s in statuses}


def _error(status: int, message: str) -> JSONResponse:
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _find(runtime: ServiceRuntime, name: str, version: str | None) -> ServingPair:
    """The loaded pair if it is this model (and version); else OIPError 404 or 503."""
    served = served_name(runtime.settings)
    if name != served:
        raise OIPError(404, f"unknown model {name!r}; this server serves {served!r}")
    pair = runtime.pair
    if pair is None:
        raise OIPError(503, f"model {name!r} is not loaded yet: {runtime.last_error}")
    if version is not None and version != pair.ddnn_version:
        raise OIPError(
            404, f"model {name!r} has no version {version!r} loaded (loaded: {pair.ddnn_version})"
        )
    return pair


# ---- health and server metadata -------------------------------------------------------------


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata() -> RawJSONResponse:
    return RawJSONResponse(
        ServerMetadata(name=SERVER_NAME, version=SERVER_VERSION, extensions=list(EXTENSIONS))
    )


@router.get("/health/live", summary="Liveness: 200 while the process answers")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get(
    "/health/ready",
    responses=_errors(400),
    summary="Readiness: 200 once the model is loaded, else 400 with the reason (the spec's 4xx)",
)
async def ready(runtime: RuntimeDep) -> Response:
    if runtime.pair is None:
        return _error(400, f"not ready: {runtime.last_error}")
    return JSONResponse({"ready": True})


# ---- models ------------------------------------------------------------------------------------


async def _metadata(runtime: ServiceRuntime, name: str, version: str | None) -> Response:
    try:
        pair = _find(runtime, name, version)
    except OIPError as exc:
        return _error(exc.status, exc.message)
    return RawJSONResponse(model_metadata(name, pair.ddnn_version, pair.n_steps, pair.n_vnfs))


@router.get(
    "/models/{name}",
    response_model=ModelMetadata,
    responses=_errors(404, 503),
    summary="Model metadata: input and output tensors with the loaded model's N and K",
)
async def get_model(name: ModelName, runtime: RuntimeDep) -> Response:
    return await _metadata(runtime, name, None)


@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelMetadata,
    responses=_errors(404, 503),
    summary="Model metadata of one version",
)
async def get_model_version(
    name: ModelName, version: ModelVersion, runtime: RuntimeDep
) -> Response:
    return await _metadata(runtime, name, version)


async def _ready(runtime: ServiceRuntime, name: str, version: str | None) -> Response:
    try:
        _find(runtime, name, version)
    except OIPError as exc:  # the spec's "not ready" is a 4xx
        return _error(400 if exc.status == 503 else exc.status, exc.message)
    return JSONResponse({"name": name, "ready": True})


@router.get(
    "/models/{name}/ready",
    responses=_errors(400, 404),
    summary="Model readiness: 200 when loaded, else 400 (404: no such model)",
)
async def model_ready(name: ModelName, runtime: RuntimeDep) -> Response:
    return await _ready(runtime, name, None)


@router.get(
    "/models/{name}/versions/{version}/ready",
    responses=_errors(400, 404),
    summary="Readiness of one version",
)
async def model_version_ready(
    name: ModelName, version: ModelVersion, runtime: RuntimeDep
) -> Response:
    return await _ready(runtime, name, version)


# ---- inference ---------------------------------------------------------------------------------


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its $defs inlined (an OpenAPI document resolves "#/$defs/..."
    against its own root, where they are not)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    inlined: dict[str, Any] = resolve(schema)
    return inlined


INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        # the binary tensor data extension (the JSON header, Inference-Header-Content-Length
        # bytes long, then the tensors) is a framing JSON Schema cannot state: described only
        "description": "JSON; or, with the binary tensor data extension, the JSON header "
        "(Inference-Header-Content-Length bytes) followed by the binary tensors.",
        "content": {
            "application/json": {"schema": _inline(InferenceRequest.model_json_schema())},
        },
    }
}


# binary_data_output: the JSON header (Inference-Header-Content-Length bytes), then the tensors
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The outputs: JSON, or JSON followed by binary tensors when asked for.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    **_errors(400, 404, 413, 503),
}


async def _infer(
    request: Request, runtime: ServiceRuntime, name: str, version: str | None
) -> Response:
    started = float(getattr(request.state, "started", time.perf_counter()))
    try:
        pair = _find(runtime, name, version)
        call = parse_infer(
            await request.body(),
            request.headers.get(HEADER_LENGTH),
            n_steps=pair.n_steps,
            n_vnfs=pair.n_vnfs,
            max_batch=runtime.settings.max_batch,
        )
        times = None if call.target_time is None else [call.target_time] * len(call.windows)
        windows = with_target_calendar(call.windows, times, pair, "parameters.target_time")
        prediction: Prediction = await runtime.allocate(
            pair,
            windows,
            call.policy,
            call.transmission_cost,
            started,
            batch=call.windows.shape[0] > 1,
        )
    except OIPError as exc:
        return _error(exc.status, exc.message)
    except InvalidDemand as exc:
        return _error(400, str(exc))
    encoded = encode_infer(prediction, call, model_name=name)
    if encoded.header_length is None:
        return Response(encoded.body, media_type="application/json")
    return Response(
        encoded.body,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(encoded.header_length)},
    )


@router.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    responses=INFER_RESPONSES,
    openapi_extra=INFER_DOC,
    summary="Allocate for a batch of windows: demand FP32 [B, N, K] in, tensors out",
)
async def infer(name: ModelName, request: Request, runtime: RuntimeDep) -> Response:
    return await _infer(request, runtime, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    responses=INFER_RESPONSES,
    openapi_extra=INFER_DOC,
    summary="Inference on one version (404 unless it is the loaded one)",
)
async def infer_version(
    name: ModelName, version: ModelVersion, request: Request, runtime: RuntimeDep
) -> Response:
    return await _infer(request, runtime, name, version)
