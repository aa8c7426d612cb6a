"""Per-client rate limiting: a token bucket per client and an ASGI middleware returning 429.

Each client may send `burst` requests at once and `rate` requests per second on average.
A rejected request gets status 429 with a `Retry-After` header (whole seconds, at least 1).
Buckets live in the worker's memory, so with N workers a client may get up to N times the
rate. The middleware runs on the event loop thread only, so the buckets need no lock.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

logger = logging.getLogger("bookrecs.serving")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Clients tracked at most; beyond it, buckets that have refilled completely are forgotten.
MAX_CLIENTS = 100_000


class TokenBuckets:
    """Token buckets keyed by client.

    Parameters
    ----------
    rate
        Tokens added per second (requests per second allowed on average); 0 disables limits.
    burst
        Bucket size (requests allowed at once).
    clock
        Monotonic clock in seconds (replaceable in tests).
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError(f"rate={rate}, burst={burst} are invalid: use rate >= 0, burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.rejected = 0
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """Take one token for `client`; return 0 when allowed, else seconds until one refills."""
        if self.rate == 0:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_CLIENTS:
                self._forget_full(now)
            return 0.0
        self._buckets[client] = (tokens, now)
        self.rejected += 1
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {
            client: state for client, state in self._buckets.items() if now - state[1] < full_after
        }


class RateLimitMiddleware:
    """ASGI middleware applying `TokenBuckets` to requests under `paths`.

    The client is the value of `key_header` when set and present, else the client address.
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        buckets: TokenBuckets,
        paths: tuple[str, ...] = ("/recommend", "/similar"),
        key_header: str | None = None,
    ) -> None:
        self.app = app
        self.buckets = buckets
        self.paths = paths
        self.key_header = key_header.lower().encode() if key_header else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        client = self._client(scope)
        wait = self.buckets.take(client)
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        if self.buckets.rejected == 1 or self.buckets.rejected % 1000 == 0:
            logger.warning(
                "rate limit: rejected client %s (%d rejections in total)",
                client,
                self.buckets.rejected,
            )
        body = json.dumps(
            {
                "error": f"rate limit of {self.buckets.rate:g} requests/s per client exceeded "
                f"by {client}; retry after {retry_after} s"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry_after).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _client(self, scope: Scope) -> str:
        if self.key_header is not None:
            for name, value in scope.get("headers", ()):
                if name == self.key_header:
                    return value.decode("latin-1")
        client = scope.get("client")
        return str(client[0]) if client else "unknown"
