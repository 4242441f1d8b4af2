"""A per-user token bucket, so one signed-in user (or a script with their cookie) cannot spend
the ACS resource's issue limit (1000 per 30 s for everyone) on their own."""

from __future__ import annotations

import math
import time

from .ttl_cache import TtlCache


class PerUserRateLimiter:
    """Allows ``per_minute`` requests per user per minute with bursts up to that size."""

    def __init__(self, per_minute: int, max_users: int = 100_000) -> None:
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._buckets: TtlCache[list[float]] = TtlCache(ttl_seconds=120, max_entries=max_users)

    def check(self, user: str) -> float:
        """Take one request from the user's bucket. Returns 0 when allowed, otherwise the seconds
        to wait before the next request would be. A limit of 0 means unlimited."""
        if self._capacity <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = [self._capacity, now]
        tokens = min(self._capacity, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        self._buckets.put(user, bucket)  # keep an active user's bucket from expiring (and refilling)
        if tokens >= 1:
            bucket[0] = tokens - 1
            return 0.0
        bucket[0] = tokens
        return max(1.0, math.ceil((1 - tokens) / self._rate))

    def give_back(self, user: str) -> None:
        """Return the request ``check`` just took, for a request a later budget refused: a
        refusal that served nothing should not also cost the user a request of their own."""
        bucket = self._buckets.get(user)
        if bucket is not None and self._capacity > 0:
            bucket[0] = min(self._capacity, bucket[0] + 1)
