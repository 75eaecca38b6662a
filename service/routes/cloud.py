"""POST /v1/cloud/infer: the cloud role. An edge sends z + context, gets the remote exits.

The body is JSON (CloudInferRequest) or, from edges with DDNN_CLOUD_BINARY, float32 bytes
(service.wire). With DDNN_CLOUD_TOKEN set, a call without ``Authorization: Bearer <token>``
is refused with 401 (create_app adds the check, so the OpenAPI document shows the scheme).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from service import wire
from service.allocation import CloudVersionMismatch, serve_cloud
from service.bodies import read_body
from service.decode import InvalidDemand
from service.deps import PairDep, RawJSONResponse, SettingsDep, json_body_schema, unprocessable
from service.schemas import CloudInferRequest, CloudInferResponse, ErrorResponse

router = APIRouter(prefix="/v1/cloud", tags=["cloud"])

BINARY_BODY = (
    "The body is JSON, or from edges with DDNN_CLOUD_BINARY `application/octet-stream`: z then "
    "context as little-endian float32 in C order, with the headers `X-DDNN-Version`, "
    "`X-DDNN-Z-Shape: B,N,H_e` and `X-DDNN-Context-Shape: B,C` (service/wire.py)."
)

_bearer = HTTPBearer(
    auto_error=False, description="The shared secret of the edge-cloud link (DDNN_CLOUD_TOKEN)."
)


async def require_cloud_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the call carries this cloud's DDNN_CLOUD_TOKEN as a bearer token."""
    if not _token_matches(credentials, settings.cloud_token):
        raise HTTPException(
            status_code=401,
            detail={
                "error": "unauthorized",
                "message": "this cloud needs Authorization: Bearer <DDNN_CLOUD_TOKEN>; the "
                "call had none or another token",
            },
            headers={"WWW-Authenticate": "Bearer"},
        )


def _token_matches(
    credentials: HTTPAuthorizationCredentials | None, expected: SecretStr | None
) -> bool:
    if expected is None:
        return True
    if credentials is None or credentials.scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(
        credentials.credentials.encode(), expected.get_secret_value().encode()
    )


TOKEN_CHECK: list[Any] = [Depends(require_cloud_token)]


@router.post(
    "/infer",
    response_model=CloudInferResponse,
    responses={
        401: {"model": ErrorResponse, "description": "No or another bearer token (when set)."},
        409: {"model": ErrorResponse, "description": "z comes from another DDNN version."},
        413: {"model": ErrorResponse, "description": "Body over the limit."},
        422: {
            "model": ErrorResponse,
            "description": (
                "A body that is not a JSON object of this schema (or a binary body that does "
                "not match its headers), z or context of the wrong shape (ragged, empty, "
                "another B, N, H_e or C), or a non-finite number."
            ),
        },
        503: {"model": ErrorResponse, "description": "The models are not loaded yet."},
    },
    openapi_extra=json_body_schema(CloudInferRequest),
    summary="Run the cloud half on z from an edge of the same DDNN version (batched)",
    description=BINARY_BODY,
)
async def infer(request: Request, pair: PairDep) -> RawJSONResponse:
    raw = await request.body()
    try:
        if _media_type(request) == wire.BINARY_TYPE:
            version, z, context = wire.decode(raw, request.headers)
            return RawJSONResponse(await serve_cloud(pair, version, z, context))
        body = await read_body(CloudInferRequest, raw)
        return RawJSONResponse(await serve_cloud(pair, body.ddnn_version, body.z, body.context))
    except CloudVersionMismatch as exc:
        raise HTTPException(
            status_code=409, detail={"error": "version_mismatch", "message": str(exc)}
        ) from None
    except (InvalidDemand, wire.BadBinaryBody) as exc:
        raise unprocessable(str(exc), code="invalid_input") from None


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()
