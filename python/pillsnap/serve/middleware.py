"""Two ASGI middlewares: ``Observe`` (request IDs, metrics, access log, last-resort 500) and
``BodyLimit`` (413 for bodies over the route's limit, before the body is read in full; every
early answer readable by clients that send the whole body first)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
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


DRAIN_BYTES = 64 * 1024 * 1024  # the most of an unwanted body read (and dropped) ...
DRAIN_S = 10.0  # ... and for how long, before an early answer goes out anyway


class BodyLimit:
    """Refuse request bodies over ``limit_for(path)`` bytes with 413, and make every answer
    that comes before the body was read readable by the client.

    A declared Content-Length over the limit is refused before the app runs; a body sent
    without one (chunked) is counted as it arrives and refused at the first byte too many.

    Clients such as Python's urllib send the whole body before they read anything. A server
    that answers and closes with part of the body still unread makes the kernel reset the
    connection, and such a client sees "connection reset" instead of the 413 (or a 401 on an
    upload). So an answer that starts while the body is unread first reads and drops the
    rest, up to ``DRAIN_BYTES`` within ``DRAIN_S``. A body declared larger than that is not
    waited for (the answer goes out at once); a client that sent ``Expect: 100-continue``
    has sent nothing yet and gets the answer at once too.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int], metrics: Metrics) -> None:
        self.app, self.limit_for, self.metrics = app, limit_for, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        body = _Body(scope, receive)

        async def send_after_drain(message: Message) -> None:
            if message["type"] == "http.response.start":
                await body.drain()
            await send(message)

        if body.declared is not None and body.declared > limit:
            self.metrics.errors.labels("too_large").inc()
            await _too_large(limit)(scope, body.receive, send_after_drain)
            return

        async def counted() -> Message:
            message = await body.receive()
            if body.seen > limit:
                # an HTTPException: FastAPI re-raises it from form parsing as it is
                raise ApiError(413, "too_large", _too_large_text(limit))
            return message

        await self.app(scope, counted, send_after_drain)


class _Body:
    """One request's body as it is received: how much came, whether all of it did."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._receive = receive
        length = _header(scope, b"content-length")
        self.declared = int(length) if length is not None and length.strip().isdigit() else None
        chunked = _header(scope, b"transfer-encoding") is not None
        self.done = not chunked and not self.declared  # nothing (more) to come
        self.waits = (_header(scope, b"expect") or "").lower() == "100-continue"
        self.seen = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            self.done = not message.get("more_body", False)
        else:  # http.disconnect
            self.done = True
        return message

    async def drain(self) -> None:
        """Read and drop the rest of the body, within the bounds of ``DRAIN_*``."""
        if self.done or (self.waits and self.seen == 0):
            return
        if self.declared is not None and self.declared > DRAIN_BYTES:
            return
        with anyio.move_on_after(DRAIN_S):
            while not self.done and self.seen <= DRAIN_BYTES:
                await self.receive()


def _too_large_text(limit: int) -> str:
    return f"request body is over the limit of {limit} bytes"


def _too_large(limit: int) -> Any:
    return error_response(413, "too_large", _too_large_text(limit),
                          headers={"Connection": "close"})
