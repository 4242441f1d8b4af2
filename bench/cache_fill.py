"""The memory figure, run inside a function host (bench.host_process, on SIGUSR1): every
in-process cache of the app filled to BENCH_CACHE_USERS users' entries, then as many again.

Every cache is found, not listed: all live ``TtlCache`` and ``SingleFlight`` objects of the
process (gc.get_objects), named by what holds them. Each TtlCache is filled through its own
``put`` with copies of an entry that real requests put there (so entries have real shapes and
sizes: a real token's length, real ids' lengths), each copy with its own strings, datetimes and
floats, so nothing is shared that real entries would not share (strings under 16 characters,
such as scope names, are shared, as they are in the service). A cache that real requests left
empty cannot be filled that way and is reported as such.

The report (JSON, to BENCH_CACHE_REPORT): per cache its name, bound, TTL, entries after each
stage and the RSS it added; after the second stage no cache may hold more than its bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
from collections import deque
from datetime import datetime, timedelta
from typing import Any

_MIN_CLONED_STRING = 16


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _unique(text: str, n: int) -> str:
    """A new string of the same length, distinct for each n (its last 8 characters replaced)."""
    return text[:-8] + f"{n:08x}"


def clone(value: Any, n: int) -> Any:
    """A copy of a cache entry (or key) with its own objects, distinct for each n."""
    if isinstance(value, str):
        return _unique(value, n) if len(value) >= _MIN_CLONED_STRING else value
    if isinstance(value, bool) or value is None or isinstance(value, int) and -5 <= value <= 256:
        return value
    if isinstance(value, float):
        return value + n * 1e-9
    if isinstance(value, int):
        return value + 0
    if isinstance(value, datetime):
        return value + timedelta(microseconds=n % 1000)
    if isinstance(value, tuple):
        return tuple(clone(v, n) for v in value)
    if isinstance(value, list):
        return [clone(v, n) for v in value]
    if isinstance(value, deque):
        return deque((clone(v, n) for v in value), maxlen=value.maxlen)
    if isinstance(value, frozenset):
        return frozenset(clone(v, n) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: clone(getattr(value, f.name), n) for f in dataclasses.fields(value) if f.init})
    return value


def _name(target: Any) -> str:
    """Owner.attribute of an object, following a rate limiter or a dict one level up."""
    for owner in gc.get_referrers(target):
        attributes = getattr(owner, "__dict__", None)
        if not isinstance(owner, dict) and isinstance(attributes, dict):
            attribute = next((k for k, v in attributes.items() if v is target), None)
            if attribute is not None:
                if type(owner).__name__ == "PerUserRateLimiter":
                    return f"{_name(owner)}.{attribute}"
                return f"{type(owner).__name__}.{attribute}"
        if isinstance(owner, dict):
            for holder in gc.get_referrers(owner):
                if getattr(holder, "__dict__", None) is owner:
                    attribute = next((k for k, v in owner.items() if v is target), "?")
                    if type(holder).__name__ == "PerUserRateLimiter":
                        return f"{_name(holder)}.{attribute}"
                    if type(holder).__name__ == "module":
                        return f"{holder.__name__}.{attribute}"
                    return f"{type(holder).__name__}.{attribute}"
            key = next((k for k, v in owner.items() if v is target), None)
            if isinstance(key, str):
                return f"[{key!r}]"
    return type(target).__name__


def _caches() -> tuple[list[Any], list[Any]]:
    from shared.single_flight import SingleFlight
    from shared.ttl_cache import TtlCache

    objects = gc.get_objects()
    return [o for o in objects if isinstance(o, TtlCache)], [o for o in objects if isinstance(o, SingleFlight)]


def _fill(cache: Any, users: int, start: int) -> bool:
    entries = cache._entries
    if not entries or cache._ttl <= 0:
        return False
    key, (_, value) = next(reversed(entries.items()))
    for n in range(start, start + users):
        cache.put(clone(key, n), clone(value, n))
    return True


def fill(users: int) -> dict[str, Any]:
    """Fill every cache to ``users`` entries, then push ``users`` more through it."""
    caches, flights = _caches()
    gc.collect()
    rss_start = _rss_bytes()
    report: list[dict[str, Any]] = []
    for cache in caches:
        entry: dict[str, Any] = {"name": _name(cache), "max_entries": cache._max, "ttl_seconds": cache._ttl,
                                 "entries_from_real_requests": len(cache)}
        before = _rss_bytes()
        entry["filled"] = _fill(cache, users, 1)
        gc.collect()
        entry["entries_after_fill"] = len(cache)
        entry["rss_added_mb"] = round((_rss_bytes() - before) / 2**20, 1)
        report.append(entry)
    gc.collect()
    rss_filled = _rss_bytes()
    for cache, entry in zip(caches, report):
        if entry["filled"]:
            _fill(cache, users, users + 1)
        entry["entries_after_second_fill"] = len(cache)
        entry["bounded"] = len(cache) <= cache._max
    gc.collect()
    return {
        "users": users,
        "rss_before_mb": round(rss_start / 2**20, 1),
        "rss_filled_mb": round(rss_filled / 2**20, 1),
        "rss_after_second_fill_mb": round(_rss_bytes() / 2**20, 1),
        "ttl_caches": report,
        "single_flights": [{"name": _name(f), "in_flight": len(f._inflight)} for f in flights],
    }


def fill_on_signal() -> None:
    """SIGUSR1 handler (installed by bench.host_process): fill on the event loop, between
    requests, and write the report."""

    def run() -> None:
        result = fill(int(os.environ.get("BENCH_CACHE_USERS", "100000")))
        with open(os.environ["BENCH_CACHE_REPORT"], "w") as out:
            json.dump(result, out)

    asyncio.get_running_loop().call_soon(run)
