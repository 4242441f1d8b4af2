"""A small bounded in-process cache with per-entry expiry.

It keeps the warm token path free of table reads: ACS's answer for an identity it no longer has is
the signal that a cached identity was deleted, and the TTL bounds how long another instance's
changes go unseen (a revoke made elsewhere is learnt sooner, by polling: token_service.py).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Least-recently-used eviction beyond ``max_entries``; entries expire after ``ttl_seconds``."""

    def __init__(self, ttl_seconds: float, max_entries: int) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        if time.monotonic() - stored_at > self._ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def get_with_age(self, key: Hashable) -> tuple[V, float] | None:
        """The value and the seconds since it was stored (or since the moment ``put`` was
        given), or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        age = time.monotonic() - stored_at
        if age > self._ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value, age

    def put(self, key: Hashable, value: V, stored_at: float | None = None) -> None:
        """Store ``value``; it expires ``ttl_seconds`` after ``stored_at`` (a time.monotonic()
        reading, default now). A caller that learnt the value from a read passes when the read
        began, so the value is never trusted longer than the TTL past what the read could see."""
        if self._ttl <= 0:
            return
        self._entries[key] = (time.monotonic() if stored_at is None else stored_at, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def pop(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
