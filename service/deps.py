"""FastAPI dependencies and small HTTP helpers shared by the routes.

Aliases: ``SettingsDep`` (the app's settings), ``RuntimeDep`` (model lifecycle, cloud link,
metrics), ``PairDep`` (the serving pair; 503 while not ready), ``AdminDep`` (X-API-Key check:
401 without the header, 403 with a wrong key or when no key is configured).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from pydantic import BaseModel
from starlette.responses import Response

from service.config import Settings
from service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.pair import ServingPair
from service.runtime import ReloadError, ServiceRuntime

__all__ = ["METRICS_CONTENT_TYPE", "ReloadError"]  # re-exported for the routes


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


# The providers are async: FastAPI runs a sync dependency on a worker thread, which costs far
# more than the call. Each dependency still costs FastAPI ~10 us a request to resolve, which is
# why the allocation routes declare none and call `serving` instead.
async def get_runtime(request: Request) -> ServiceRuntime:
    return _runtime(request)


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


async def get_ready_pair(request: Request) -> ServingPair:
    """The serving pair, or 503 with the reason it is not loaded. It reads the runtime itself,
    not through RuntimeDep: FastAPI re-solves a nested dependency's own dependencies even when
    their value is cached (~5 us a request)."""
    return ready_pair(_runtime(request))


def serving(request: Request) -> tuple[ServiceRuntime, ServingPair]:
    """The runtime and its ready pair (503 if not loaded), for the allocation routes: called,
    not declared, since FastAPI's solving of the two dependencies costs more (measured: ~55 us
    a request on the bench's machine under load) than the rest of the request's framework work."""
    runtime = _runtime(request)
    return runtime, ready_pair(runtime)


def ready_pair(runtime: ServiceRuntime) -> ServingPair:
    pair = runtime.pair
    if pair is None:
        raise HTTPException(
            status_code=503,
            detail={
                "error": "not_ready",
                "message": f"the models are not loaded: {runtime.last_error}",
            },
            headers={"Retry-After": "5"},
        )
    return pair


PairDep = Annotated[ServingPair, Depends(get_ready_pair)]


async def require_admin(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None,
) -> None:
    if x_api_key is None:
        raise HTTPException(
            status_code=401,
            detail={
                "error": "unauthorized",
                "message": "admin endpoint: send the X-API-Key header",
            },
            headers={"WWW-Authenticate": "ApiKey"},
        )
    expected = settings.admin_api_key
    if expected is None:
        raise HTTPException(
            status_code=403,
            detail={
                "error": "forbidden",
                "message": "admin endpoints are disabled: set DDNN_ADMIN_API_KEY to enable them",
            },
        )
    if not secrets.compare_digest(x_api_key.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            status_code=403, detail={"error": "forbidden", "message": "wrong X-API-Key"}
        )


AdminDep = Depends(require_admin)


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """openapi_extra for a route that reads its body itself: the model's schema, inline."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


class RawJSONResponse(Response):
    """A response model rendered by its own pydantic-core serializer, not validated again (a
    route that returns a Response skips FastAPI's validation against response_model)."""

    media_type = "application/json"

    def __init__(
        self,
        content: BaseModel,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(content, status_code=status_code, headers=headers)

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def json_bytes(model: BaseModel) -> bytes:
    """The model as strict JSON (NonFiniteAnswer if it holds NaN or Infinity)."""
    body: bytes = model.__pydantic_serializer__.to_json(model)
    if b"NaN" in body or b"Infinity" in body:  # rare: then tell a constant from a string
        json.loads(body, parse_constant=_refuse_constant)
    return body


class NonFiniteAnswer(ValueError):
    """An answer holds NaN or Infinity: not JSON, so it is not sent (the client gets a 500)."""


def _refuse_constant(name: str) -> Any:
    raise NonFiniteAnswer(f"the answer holds a non-finite number ({name}); it was not sent")


def unprocessable(message: str, code: str = "invalid_demand") -> HTTPException:
    return HTTPException(status_code=422, detail={"error": code, "message": message})


def too_large(message: str) -> HTTPException:
    return HTTPException(status_code=413, detail={"error": "too_large", "message": message})
