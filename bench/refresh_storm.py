"""P4: a refresh storm at the emulator's real limits (issueAccessToken: 1000 per 30 s for the
whole resource). 1,000 signed-in users each ask for a token every 5 s for a minute, as the web
app's background refresh does (no Cache-Control: no-cache). No user may see a 429, and the
figure is how many ACS issue calls each user request costs: a token issued to the same user,
scopes and lifetime within TOKEN_REUSE_SECONDS is handed out again, and concurrent requests of
one user share ACS calls (the burst figure: one user's many tabs at once, each asking no-cache; a
no-cache request never joins an issue begun before it came, so a burst costs at most two).

The users' identities exist before the storm (created with another token lifetime, so no token
of the storm's kind is waiting to be reused): the storm measures refreshes, not sign-ups.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from .measure import FunctionHostClient, summary_ms
from .stack import Emulator, calls, new_users

USERS = 1000
INTERVAL_SECONDS = 5.0
BURST = 50
_SIGN_UP_BODY = {"expiresInMinutes": 120}


async def _sign_up(host: FunctionHostClient, users: list, concurrency: int = 64) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(user) -> None:
        async with semaphore:
            status, body = await host.token(user, body=_SIGN_UP_BODY)
            if status != 200:
                raise RuntimeError(f"sign-up token request answered {status}: {body}")

    await asyncio.gather(*(one(u) for u in users))


async def _burst(host: FunctionHostClient, emulator: Emulator) -> dict[str, Any]:
    """One user's BURST concurrent explicit refreshes (no-cache): at most two ACS calls between them."""
    user = new_users(1, "burst")[0]
    await _sign_up(host, [user])
    before = await emulator.stats()
    results = await asyncio.gather(*(host.token(user, fresh=True) for _ in range(BURST)))
    after = await emulator.stats()
    return {
        "requests": BURST,
        "ok": sum(1 for status, _ in results if status == 200),
        "acs_issue_calls": calls(before, after, "issueAccessToken"),
        "distinct_tokens": len({body.get("token") for status, body in results if status == 200}),
    }


async def run(stack: dict[str, Any], emulator: Emulator, seconds: float, scaled_limits: float) -> dict[str, Any]:
    users = new_users(USERS, "storm")
    rounds = max(1, round(seconds / INTERVAL_SECONDS))
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        host = FunctionHostClient(session, stack["functionHost"])
        await emulator.configure(limitScale=scaled_limits)  # sign-ups are not what is measured
        await _sign_up(host, users)
        await emulator.configure(limitScale=1, requestsPerSecond=None)  # the real limits, fresh windows
        burst = await _burst(host, emulator)
        await emulator.configure(limitScale=1)  # fresh windows again: the burst's call is not the storm's

        statuses: dict[int, int] = {}
        latencies: list[float] = []
        late: list[float] = []
        before = await emulator.stats()
        start = time.perf_counter() + 0.5

        async def user_loop(index: int, sent_times: list[float]) -> None:
            user = users[index]
            offset = INTERVAL_SECONDS * index / USERS  # spread evenly: 200 requests a second
            for round_number in range(rounds):
                due = start + offset + round_number * INTERVAL_SECONDS
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late.append(-delay)
                sent = time.perf_counter()
                sent_times.append(sent - start)
                try:
                    status, _ = await host.token(user)
                except aiohttp.ClientError:
                    status = 0
                latencies.append(time.perf_counter() - sent)
                statuses[status] = statuses.get(status, 0) + 1

        timeline: list[dict[str, float]] = []
        sent_times: list[float] = []

        async def watch_acs() -> None:
            """ACS issue calls over time, a sample a second, for the plot."""
            while True:
                stats = await emulator.stats()
                timeline.append({"t": round(time.perf_counter() - start, 2), "issue_calls": calls(before, stats, "issueAccessToken")})
                await asyncio.sleep(1.0)

        watcher = asyncio.create_task(watch_acs())
        await asyncio.gather(*(user_loop(i, sent_times) for i in range(USERS)))
        elapsed = time.perf_counter() - start
        watcher.cancel()
        after = await emulator.stats()

    requests = sum(statuses.values())
    issue_calls = calls(before, after, "issueAccessToken")
    return {
        "users": USERS,
        "interval_seconds": INTERVAL_SECONDS,
        "rounds": rounds,
        "seconds": round(elapsed, 1),
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "user_429s": statuses.get(429, 0),
        "acs_issue_calls": issue_calls,
        "acs_create_calls": calls(before, after, "createIdentityAndToken") + calls(before, after, "createIdentity"),
        "acs_throttled": after["throttledTotal"] - before["throttledTotal"],
        "acs_calls_per_user_request": round(issue_calls / requests, 4) if requests else None,
        "latency": summary_ms(latencies),
        "sends_late_over_100ms": sum(1 for d in late if d > 0.1),
        "burst": burst,
        "acs_issue_limit_per_second": round(1000 / 30, 1),
        "timeline": {
            "acs_issue_calls": timeline,
            "user_requests_per_second": [sum(1 for t in sent_times if s <= t < s + 1) for s in range(int(elapsed) + 1)],
        },
    }
