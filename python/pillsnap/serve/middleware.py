"""Two ASGI middlewares: ``Observe`` (request IDs, metrics, access log, last-resort 500) and
``BodyLimit`` (413 for bodies over the route's limit, before the body is read in full)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pillsnap.serve.context import reset_request_id, set_request_id
from pillsnap.serve.errors import ApiError, error_response
from pillsnap.serve.metrics import Metrics

logger = logging.getLogger("pillsnap.serve.access")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # safe to echo into headers and logs


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class Observe:
    """X-Request-ID (the client's, when sane, else a new one) on every response and log line;
    request counts, latency and in-flight gauge; any unhandled error becomes a JSON 500."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _CLIENT_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = set_request_id(request_id)
        status = {"code": 500, "started": False}
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
            self.metrics.errors.labels("internal").inc()
            if not status["started"]:
                await error_response(500, "internal", "internal server error")(
                    scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            logger.info("%s %s %s %.1f ms", scope["method"], scope["path"], status["code"],
                        elapsed * 1000)
            reset_request_id(token)


class BodyLimit:
    """Refuse request bodies over ``limit_for(path)`` bytes with 413.

    A declared Content-Length over the limit is refused before a byte is read; a body sent
    without one (chunked) is counted as it arrives and refused at the first byte too many.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int], metrics: Metrics) -> None:
        self.app, self.limit_for, self.metrics = app, limit_for, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            self.metrics.errors.labels("too_large").inc()
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # an HTTPException: FastAPI re-raises it from form parsing as it is
                    raise ApiError(413, "too_large", _too_large_text(limit))
            return message

        await self.app(scope, counted, send)


def _too_large_text(limit: int) -> str:
    return f"request body is over the limit of {limit} bytes"


def _too_large(limit: int) -> Any:
    return error_response(413, "too_large", _too_large_text(limit),
                          headers={"Connection": "close"})
