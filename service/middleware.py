"""Pure ASGI middleware for production traffic: request ids and load shedding.

- ``RequestIdMiddleware`` echoes the client's ``X-Request-ID`` (a printable ASCII token of at
  most 128 characters) or makes one (32 hex digits), on every response; handlers find it in
  ``request.state.request_id``.
- ``LoadShedder`` bounds the requests in flight (``DDNN_MAX_IN_FLIGHT``): one over the bound is
  answered at once with 429 and ``Retry-After`` instead of queueing until its deadline passes.
  Probes and metrics are never shed: an overloaded process is alive and ready, only busy.
"""

from __future__ import annotations

import json
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID = b"x-request-id"
_VALID_ID = re.compile(rb"[!-~]{1,128}")  # visible ASCII, no spaces or control characters
NEVER_SHED = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})


def request_id_of(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == REQUEST_ID and _VALID_ID.fullmatch(value):
            return bytes(value)
    return uuid.uuid4().hex.encode()


class RequestIdMiddleware:
    """Every HTTP response carries X-Request-ID: the request's own, or a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID]
                message["headers"] = [*headers, (REQUEST_ID, request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class LoadShedder:
    """At most `max_in_flight` requests at once (0: no bound); the next ones get 429 at once."""

    def __init__(self, app: ASGIApp, *, max_in_flight: int, retry_after_s: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.shed = 0  # requests answered 429 since the start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_in_flight <= 0 or scope["path"] in NEVER_SHED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.shed += 1
            await self._refuse(scope, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = (
            f"overloaded: {self.max_in_flight} requests are in flight; retry after "
            f"{self.retry_after_s} s"
        )
        # the Open Inference Protocol's errors are {"error": message}; ours add a code
        error = (
            {"error": message}
            if scope["path"].startswith("/v2/")
            else {"error": "overloaded", "message": message}
        )
        body = json.dumps(error).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after_s).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
