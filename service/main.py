"""The FastAPI app: lifespan (load the pair via the registry), middleware, errors, routers.

``create_app(settings)`` builds an app; the module-level ``app`` uses the environment's settings
(``uvicorn service.main:app`` or ``ddnn-serve``). The lifespan starts a ``ServiceRuntime``:
it loads the alias's pair (bounded wait; if the registry is unreachable the app serves
not-ready and keeps retrying), optionally polls the alias, and closes everything on shutdown.

Every error is JSON ``{"error": code, "message": text, "detail": [...]?}``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi import HTTPException as FastAPIHTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings, get_settings
from service.metrics import ServiceMetrics
from service.middleware import LoadShedder, RequestIdMiddleware
from service.openapi import ServiceApp
from service.routes import allocations, cloud, health, models, v2
from service.runtime import (
    AliasResolver,
    PairLoader,
    ServiceRuntime,
    registry_loader,
    registry_resolver,
)

logger = logging.getLogger(__name__)

# DDNN_OTEL=false: FastAPI's native OpenTelemetry off (it looks up three global providers per
# request even when none is configured)
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "validation_error",
    502: "bad_gateway",
    503: "not_ready",
}


def create_app(
    settings: Settings | None = None,
    *,
    loader: PairLoader = registry_loader,
    resolver: AliasResolver | None = registry_resolver,
) -> FastAPI:
    """An app for these settings; tests pass a fake loader (and resolver) instead of MLflow."""
    settings = settings or get_settings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(settings, metrics, loader=loader, resolver=resolver)
        app.state.runtime = runtime
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = ServiceApp(
        title="DDNN slice allocation service",
        version="0.1.0",
        summary="Edge/cloud resource allocation for network slices with a distributed LSTM.",
        description=(
            "POST the last N demand samples of K VNFs; the edge model answers at once or, when "
            "the offloading policy expects the cloud to be worth the round trip, sends its "
            "compressed features z to the cloud model. Every answer explains itself."
        ),
        lifespan=lifespan,
        telemetry=None if settings.otel else NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.include_router(health.router)
    app.include_router(models.router)
    if settings.serves_allocations:
        app.include_router(allocations.router)
        app.include_router(v2.router)  # the Open Inference Protocol (KServe v2)
    if settings.serves_cloud:
        app.include_router(
            cloud.router, dependencies=cloud.TOKEN_CHECK if settings.cloud_token else []
        )
    _install_error_handlers(app)
    app.add_middleware(  # innermost of the three: after the size check, counted in the metrics
        LoadShedder,
        max_in_flight=settings.max_in_flight,
        retry_after_s=settings.shed_retry_after_s,
    )
    app.add_middleware(EdgeMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)  # outermost: every response carries X-Request-ID
    return app


# ---------------------------------------------------------------------------------------------
# errors


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        detail = [_clean(error) for error in exc.errors()]
        message = "; ".join(_describe(error) for error in detail) or "invalid request"
        return JSONResponse(
            {"error": "validation_error", "message": message, "detail": detail}, status_code=422
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail
        if isinstance(detail, dict):
            code, message = str(detail.get("error")), str(detail.get("message"))
        else:
            code, message = ERROR_CODES.get(exc.status_code, "error"), str(detail)
        return JSONResponse(
            {"error": code, "message": message}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        """The exception's text goes to the log only (it may hold paths, settings, data); the
        body says where to find it."""
        request_id = uuid.uuid4().hex
        logger.error(
            "unhandled error on %s %s (request id %s)",
            request.method,
            request.url.path,
            request_id,
            exc_info=exc,
        )
        message = f"internal error; the service log has the details under request id {request_id}"
        return JSONResponse({"error": "internal_error", "message": message}, status_code=500)


def _clean(error: Any) -> dict[str, Any]:
    """A validation error without the (possibly huge) input and with JSON-safe context."""
    cleaned = {key: error[key] for key in ("type", "loc", "msg") if key in error}
    if "ctx" in error:
        cleaned["ctx"] = {key: str(value) for key, value in error["ctx"].items()}
    return cleaned


def _describe(error: dict[str, Any]) -> str:
    loc = [part for part in error.get("loc", ()) if part != "body"]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(
        "."
    )
    return f"{where or 'body'}: {error.get('msg', 'invalid')}"


# ---------------------------------------------------------------------------------------------
# middleware


class BodyTooLarge(FastAPIHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail={
                "error": "too_large",
                "message": f"request body over the limit of {limit} bytes",
            },
        )


class EdgeMiddleware:
    """Pure ASGI (no per-request task): body size limit, start time, request metrics."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})["started"] = started
        status = 500
        limit = self.max_body_bytes

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                response = _error(
                    413,
                    "too_large",
                    f"request body of {declared} bytes is over the limit of {limit} bytes",
                )
                await response(scope, receive, send_wrapper)
                return
            received = 0

            async def receive_wrapper() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise BodyTooLarge(limit)
                return message

            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            self.metrics.observe_request(
                _endpoint_label(scope),
                _method_label(scope),
                str(status),
                time.perf_counter() - started,
            )


# the label values are bounded: a client choosing the method or the path adds no series
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def _method_label(scope: Scope) -> str:
    method: str = scope["method"]
    return method if method in METHODS else "other"


def _endpoint_label(scope: Scope) -> str:
    """The route's template (e.g. /v1/allocations), or one bucket for paths no route has."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


app = create_app()
