"""Abuse limits for the web endpoint: an in-memory sliding window per key (IP or address),
and request bodies read up to a size."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from starlette.requests import Request


async def capped_body(request: Request, max_bytes: int) -> bytes | None:
    """The request body, or None when it is larger than `max_bytes` (declared or streamed:
    a client may lie about, or leave out, Content-Length)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class SlidingWindow:
    """At most `limit` hits per key within any `window_s` seconds; time is passed in."""

    def __init__(self, limit: int, window_s: float, *, max_keys: int = 100_000) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be ≥ 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float) -> bool:
        """Record one attempt for `key` at `now`; False when it goes over the limit."""
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._sweep(now)
            hits = self._hits[key] = deque()
        self._expire(hits, now)
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def __len__(self) -> int:
        return len(self._hits)

    def _expire(self, hits: deque[float], now: float) -> None:
        horizon = now - self.window_s
        while hits and hits[0] <= horizon:
            hits.popleft()

    def _sweep(self, now: float) -> None:
        # Memory stays bounded under a flood of distinct keys: drop idle keys, and if
        # every key is still busy, forget the oldest half rather than grow without end.
        for key in list(self._hits):
            hits = self._hits[key]
            self._expire(hits, now)
            if not hits:
                del self._hits[key]
        if len(self._hits) >= self.max_keys:
            ordered = sorted(self._hits, key=lambda k: self._hits[k][-1])
            for key in ordered[: len(ordered) // 2]:
                del self._hits[key]


@dataclass(frozen=True)
class Limits:
    """How many subscribe requests one IP and one address may make, and over what window."""

    per_ip: int = 5
    per_ip_window_s: float = 600.0
    per_address: int = 3
    per_address_window_s: float = 3600.0


class SubscribeLimiter:
    """The two windows of `POST /subscribe`: one per client IP, one per email address."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.by_ip = SlidingWindow(self.limits.per_ip, self.limits.per_ip_window_s)
        self.by_address = SlidingWindow(self.limits.per_address, self.limits.per_address_window_s)

    def allow_ip(self, ip: str, now: float) -> bool:
        """False once this IP has sent too many subscribe requests lately."""
        return self.by_ip.hit(ip, now)

    def allow_address(self, address: str, now: float) -> bool:
        """False once this address was asked for too often lately (no more mail to it)."""
        return self.by_address.hit(address.casefold(), now)
