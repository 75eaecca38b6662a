"""POST /v1/cloud/infer: the cloud role. An edge sends z + context, gets the remote exits."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from service.allocation import CloudVersionMismatch, serve_cloud
from service.decode import InvalidDemand
from service.deps import PairDep, RawJSONResponse, unprocessable
from service.schemas import CloudInferRequest, CloudInferResponse, ErrorResponse

router = APIRouter(prefix="/v1/cloud", tags=["cloud"])


@router.post(
    "/infer",
    response_model=CloudInferResponse,
    responses={
        409: {"model": ErrorResponse, "description": "z comes from another DDNN version."},
        422: {"model": ErrorResponse, "description": "z or context has the wrong shape."},
        503: {"model": ErrorResponse, "description": "The models are not loaded yet."},
    },
    summary="Run the cloud half on z from an edge of the same DDNN version (batched)",
)
async def infer(body: CloudInferRequest, pair: PairDep) -> RawJSONResponse:
    try:
        return RawJSONResponse(await serve_cloud(pair, body))
    except CloudVersionMismatch as exc:
        raise HTTPException(
            status_code=409, detail={"error": "version_mismatch", "message": str(exc)}
        ) from None
    except InvalidDemand as exc:
        raise unprocessable(str(exc), code="invalid_input") from None
