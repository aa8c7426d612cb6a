"""Request guards of the service: a request body size limit and quiet validation logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

logger = logging.getLogger("bookrecs.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Logger that BentoML 1.4 uses for "Exception on <path> [<method>]" with a traceback
# (bentoml._internal.server.http_app.log_exception), also for 400 validation errors.
BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"
# Field names quoted per rejected request in the log line; they come from the client.
MAX_LOGGED_FIELDS = 5
MAX_FIELD_CHARS = 40


class BodyLimitMiddleware:
    """ASGI middleware that returns 413 for request bodies over `max_bytes` under `paths`.

    A declared Content-Length over the limit is rejected before the body is read. Otherwise
    the body is read up to the limit and handed to the app from memory, so a client that
    sends no Content-Length (chunked transfer) is limited too.
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        max_bytes: int,
        paths: tuple[str, ...] = ("/recommend", "/similar"),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths
        self.rejected = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client disconnected: let the app see the disconnect.
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, send, size)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _reject(self, scope: Scope, send: Send, size: int) -> None:
        self.rejected += 1
        if self.rejected == 1 or self.rejected % 1000 == 0:
            logger.warning(
                "rejected a request body of at least %d bytes on %s (limit %d bytes, "
                "%d rejections in total)",
                size,
                scope.get("path"),
                self.max_bytes,
                self.rejected,
            )
        body = json.dumps(
            {
                "error": f"request body of at least {size} bytes exceeds the limit of "
                f"{self.max_bytes} bytes: send only the documented fields"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """Return a `receive` that yields `messages` first and then reads from `receive`."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class ValidationLogFilter(logging.Filter):
    """Turn BentoML's per-request validation tracebacks into one INFO line.

    BentoML logs every request that fails input validation at ERROR level with the pydantic
    traceback, which quotes part of the input, so any client could flood the log. The record
    keeps its logger and becomes "rejected invalid input on <path>: <n> errors in <fields>";
    records of other exceptions pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, ValidationError):
            return True
        fields = []
        for detail in error.errors(include_input=False)[:MAX_LOGGED_FIELDS]:
            name = ".".join(str(part) for part in detail["loc"]) or "<body>"
            fields.append(repr(name[:MAX_FIELD_CHARS]))
        path = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "rejected invalid input on %s with 400: %d validation error(s) in fields %s"
        record.args = (path, error.error_count(), ", ".join(fields) or "none")
        record.levelno = logging.INFO
        record.levelname = logging.getLevelName(logging.INFO)
        record.exc_info = None
        record.exc_text = None
        return True


def install_validation_log_filter() -> None:
    """Add `ValidationLogFilter` to BentoML's HTTP logger once per process."""
    target = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(existing, ValidationLogFilter) for existing in target.filters):
        target.addFilter(ValidationLogFilter())
