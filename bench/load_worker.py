"""One side of P6's load, in a process of its own so its CPU time is its own:

    python -m bench.load_worker host URL CONCURRENCY   # POST /api/token to a function host
    python -m bench.load_worker sdk ENDPOINT CONCURRENCY TIMEOUT  # the bare aio SDK's get_token

(TIMEOUT: the service's DEPENDENCY_TIMEOUT_SECONDS, which its client configuration is built from)

It reads its users on stdin first (one JSON line: for ``host`` a list of principal headers, for
``sdk`` a list of communicationUserIds), then one command a line: ``run SECONDS`` starts
CONCURRENCY callers that each send requests back to back for that long, over long-lived
connections, and answers with one JSON line (requests finished inside the window, all requests,
statuses, latencies, this process's CPU seconds); ``gc SECONDS`` does the same with the garbage
collector's CPU time counted (bench.gc_meter); ``tls`` answers the TLS connections it opened since
it started (bench.tls_meter). ``quit`` ends it.

The host side asks with ``Cache-Control: no-cache`` so every request is an issueAccessToken at
ACS, as every SDK call is. The SDK side uses the service's own credential and client
configuration (shared.credentials, shared.retry), so the comparison is the service's overhead.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from datetime import timedelta
from typing import Any, Awaitable, Callable

from . import gc_meter
from .measure import percentile
from .stack import SCOPES, TOKEN_MINUTES


async def _window(seconds: float, concurrency: int, call: Callable[[int, int], Awaitable[int]]) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    in_window = 0
    cpu, started = time.process_time(), time.perf_counter()
    deadline = started + seconds

    async def caller(index: int) -> None:
        nonlocal in_window
        sequence = itertools.count()
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                status = await call(index, next(sequence))
            except Exception as error:  # counted, never fatal to the run
                status = type(error).__name__
            finished = time.perf_counter()
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                latencies.append(finished - sent)
                if finished <= deadline:
                    in_window += 1

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return {
        "seconds": seconds,
        "requests_in_window": in_window,
        "requests": len(latencies),
        "statuses": statuses,
        "cpu_seconds": time.process_time() - cpu,
        "wall_seconds": time.perf_counter() - started,
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "latencies_ms": [round(x * 1000, 2) for x in latencies],
    }


def _user(caller: int, n: int, concurrency: int, users: int) -> int:
    """Caller i takes turns among users of its own (i*k … i*k+k-1), so no two concurrent requests
    are ever for the same user (the service would let them share one ACS call)."""
    per_caller = max(1, users // concurrency)
    return (caller * per_caller + n % per_caller) % users


async def _serve(call: Callable[[int, int], Awaitable[int]], concurrency: int) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if not line or line == "quit":
            return
        command, _, argument = line.partition(" ")
        if command == "tls":  # TLS connections opened since the start (bench.tls_meter)
            print(json.dumps({"tls": gc_meter.tls_meter.snapshot()}), flush=True)
            continue
        if command not in ("run", "gc"):
            raise SystemExit(f"unknown command {command!r}")
        if command == "gc":
            gc_meter.start()
        result = await _window(float(argument), concurrency, call)
        if command == "gc":
            result["gc"] = gc_meter.stop()
        print(json.dumps(result), flush=True)


async def host_side(url: str, concurrency: int, principals: list[str]) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)  # one keep-alive connection per caller
    async with aiohttp.ClientSession(connector=connector) as session:
        async def call(caller: int, n: int) -> int:
            headers = {"x-ms-client-principal": principals[_user(caller, n, concurrency, len(principals))],
                       "Cache-Control": "no-cache"}
            async with session.post(f"{url}/api/token", headers=headers) as response:
                await response.read()
                return response.status

        await _serve(call, concurrency)


async def sdk_side(endpoint: str, concurrency: int, identities: list[str], timeout_seconds: float) -> None:
    from azure.communication.identity import CommunicationUserIdentifier
    from azure.communication.identity.aio import CommunicationIdentityClient

    from shared.credentials import new_credential
    from shared.retry import pipeline_options

    credential = new_credential()
    client = CommunicationIdentityClient(endpoint, credential, **pipeline_options(timeout_seconds))
    try:
        async def call(caller: int, n: int) -> int:
            user = CommunicationUserIdentifier(identities[_user(caller, n, concurrency, len(identities))])
            await client.get_token(user, list(SCOPES), token_expires_in=timedelta(minutes=TOKEN_MINUTES))
            return 200

        await _serve(call, concurrency)
    finally:
        await client.close()
        await credential.close()


def main() -> None:
    side, target, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    users = json.loads(sys.stdin.readline())
    if side == "host":
        asyncio.run(host_side(target, concurrency, users))
    else:
        asyncio.run(sdk_side(target, concurrency, users, float(sys.argv[4])))


if __name__ == "__main__":
    main()
