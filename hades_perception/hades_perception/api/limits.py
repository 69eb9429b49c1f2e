"""Limits that keep one client from taking the server: the body size and a per-key rate.

Body size: a request that declares a Content-Length above the limit is answered 413
before any of its body is read; one sent without a length (chunked) is counted as it
streams and refused the moment it passes the limit. Either way the server never holds
more than the limit, and the connection is closed after the answer (its unread body
cannot be skipped).

Rate: a token bucket per key, `rate` requests a minute with bursts of up to that many;
a request finding the bucket empty is answered 429 with Retry-After.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from hades_perception.api.errors import ApiError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


def too_large(limit: int, got: str) -> tuple[str, str]:
    return "payload too large", f"the request body is {got}; this server accepts at most {limit / 2**20:g} MB"


class BodyLimit:
    """ASGI middleware: at most `limit` bytes of request body."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            error, detail = too_large(self.limit, f"{int(declared) / 2**20:.1f} MB (Content-Length)")
            body = json.dumps({"error": error, "detail": detail}).encode()
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    error, detail = too_large(self.limit, "more than that (streamed)")
                    raise ApiError(413, error, detail, headers={"Connection": "close"})
            return message

        await self.app(scope, counted, send)


class RateLimiter:
    """Token buckets by key name: `per_minute` requests a minute, bursts up to as many."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)

    def take(self, name: str) -> float:
        """0 when `name` may make a request now (and a token is spent), else the seconds
        until it may."""
        if self.per_minute <= 0:
            return 0.0
        rate, capacity = self.per_minute / 60.0, max(1.0, self.per_minute)
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(name, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / rate

    def refuse(self, name: str, wait_s: float) -> ApiError:
        retry = max(1, math.ceil(wait_s))
        return ApiError(
            429,
            "rate limited",
            f"key {name!r} has made its {self.per_minute:g} requests a minute; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
