"""POST /v1/cloud/infer: the cloud role. An edge sends z + context, gets the remote exits."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from service.allocation import CloudVersionMismatch, serve_cloud
from service.bodies import read_body
from service.decode import InvalidDemand
from service.deps import PairDep, RawJSONResponse, json_body_schema, unprocessable
from service.schemas import CloudInferRequest, CloudInferResponse, ErrorResponse

router = APIRouter(prefix="/v1/cloud", tags=["cloud"])


@router.post(
    "/infer",
    response_model=CloudInferResponse,
    responses={
        409: {"model": ErrorResponse, "description": "z comes from another DDNN version."},
        413: {"model": ErrorResponse, "description": "Body over the limit."},
        422: {
            "model": ErrorResponse,
            "description": (
                "A body that is not a JSON object of this schema, or z or context of the wrong "
                "shape (ragged, empty, another B, N, H_e or C), or a non-finite number."
            ),
        },
        503: {"model": ErrorResponse, "description": "The models are not loaded yet."},
    },
    openapi_extra=json_body_schema(CloudInferRequest),
    summary="Run the cloud half on z from an edge of the same DDNN version (batched)",
)
async def infer(request: Request, pair: PairDep) -> RawJSONResponse:
    body = await read_body(CloudInferRequest, await request.body())
    try:
        return RawJSONResponse(await serve_cloud(pair, body))
    except CloudVersionMismatch as exc:
        raise HTTPException(
            status_code=409, detail={"error": "version_mismatch", "message": str(exc)}
        ) from None
    except InvalidDemand as exc:
        raise unprocessable(str(exc), code="invalid_input") from None
