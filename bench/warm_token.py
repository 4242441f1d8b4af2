"""P1: a warm token request through the function handler vs the bare SDK issueAccessToken call.

Warm means the caller's identity is already known to the process, so the handler's whole path is
HTTP in, one issueAccessToken at ACS, HTTP out: no table read. ``Cache-Control: no-cache`` makes
every request really reach ACS (otherwise a token issued moments ago could be handed out again).
The two callers alternate in random order, so drift in the machine's load hits both alike.
"""

from __future__ import annotations

import random
from typing import Any

import aiohttp

from .measure import FunctionHostClient, median, percentile, sdk_session, sdk_token, summary_ms, timed_sdk_token
from .stack import Emulator, calls, new_users

USERS = 20  # enough that no user nears the per-user limit (60 a minute) during the run


async def run(session: aiohttp.ClientSession, stack: dict[str, Any], emulator: Emulator, iterations: int) -> dict[str, Any]:
    host = FunctionHostClient(session, stack["functionHost"])
    users = new_users(USERS, "warm")
    identities = {}
    for user in users:  # first calls: identities created, mappings cached in the host
        status, body = await host.token(user)
        if status != 200:
            raise RuntimeError(f"warm-up token request answered {status}: {body}")
        identities[user.user_id] = body["communicationUserId"]

    handler: list[float] = []
    sdk: list[float] = []
    async with sdk_session(stack["acsEndpoint"]) as client:
        for user in users:  # warm both paths (credential token, connections) before measuring
            await sdk_token(client, identities[user.user_id])
            await host.token(user, fresh=True)
        before = await emulator.stats()
        failures = 0
        for i in range(iterations):
            user = users[i % len(users)]

            async def through_handler() -> None:
                nonlocal failures
                status, elapsed = await host.timed_token(user, fresh=True)
                if status != 200:
                    failures += 1
                handler.append(elapsed)

            async def bare_sdk() -> None:
                sdk.append(await timed_sdk_token(client, identities[user.user_id]))

            pair = [through_handler, bare_sdk]
            random.shuffle(pair)
            for step in pair:
                await step()
        after = await emulator.stats()

    return {
        "iterations": iterations,
        "handler": summary_ms(handler),
        "sdk": summary_ms(sdk),
        "median_ratio": round(median(handler) / median(sdk), 3),
        "p95_ratio": round(percentile(handler, 95) / percentile(sdk, 95), 3),
        "handler_failures": failures,
        "acs_issue_calls": calls(before, after, "issueAccessToken"),
        "acs_throttled": after["throttledTotal"] - before["throttledTotal"],
    }
