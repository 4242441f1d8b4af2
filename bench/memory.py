"""Memory: the function host's RSS with 100,000 users' entries in every in-process cache, and
proof that every cache is bounded (bench.cache_fill does the filling inside the host).

A fresh host first serves real requests of every kind that leaves something in memory (first
tokens, refreshes, revokes, deletes, an operator's tombstones), so every cache holds at least
one real entry to copy; then SIGUSR1 makes it fill each cache to 100,000 users and push as many
again through it, and report each cache's entries and the RSS it added.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from .stack import new_users, principal_header
from .throughput import sign_up, start_host, stop_host

USERS = 100_000


async def _real_traffic(url: str) -> dict[str, int]:
    """Requests of every kind, so each cache has a real entry."""
    users = new_users(6, "memory")
    await sign_up(url, users)
    statuses: dict[str, int] = {}
    admin = {"x-ms-client-principal": principal_header("bench-memory-admin", ("anonymous", "authenticated", "admin"))}
    async with aiohttp.ClientSession() as session:
        async def call(method: str, path: str, headers: dict[str, str], body: Any = None) -> None:
            async with session.request(method, f"{url}{path}", headers=headers, json=body) as response:
                await response.read()
                statuses[f"{method} {path} {response.status}"] = statuses.get(f"{method} {path} {response.status}", 0) + 1

        for user in users:
            await call("POST", "/api/token", user.headers)  # a reused token
            await call("POST", "/api/token", {**user.headers, "Cache-Control": "no-cache"})
            await call("GET", "/api/identity", user.headers)
        await call("POST", "/api/token/revoke", users[0].headers)
        await call("POST", "/api/token/revoke", users[1].headers)
        await call("DELETE", "/api/identity", users[2].headers)
        await call("POST", "/api/manage/deleted-users", admin, {"appUserIds": [users[3].app_user_id]})
    return statuses


async def run(stack: dict[str, Any], log_dir: Path, users: int = USERS) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    report = log_dir / "memory-caches.json"
    report.unlink(missing_ok=True)
    process, url = start_host(stack, log_dir / "memory-host.log",
                              {"BENCH_CACHE_REPORT": str(report), "BENCH_CACHE_USERS": str(users)})
    try:
        host = psutil.Process(process.pid)
        statuses = await _real_traffic(url)
        rss_before = host.memory_info().rss
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 600
        while not report.exists() or report.stat().st_size == 0:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the host did not report its caches")
            await asyncio.sleep(0.5)
        await asyncio.sleep(0.2)
        result = json.loads(report.read_text())
        result["rss_outside_after_mb"] = round(host.memory_info().rss / 2**20, 1)
        result["rss_outside_before_mb"] = round(rss_before / 2**20, 1)
        # the host still answers after the fill
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/api/health") as response:
                result["health_after_fill"] = response.status
    finally:
        stop_host(process)
    caches = result["ttl_caches"]
    result["real_requests"] = statuses
    result["all_filled"] = all(c["filled"] for c in caches)
    result["all_bounded"] = all(c["bounded"] for c in caches) and all(f["in_flight"] == 0 for f in result["single_flights"])
    return result
