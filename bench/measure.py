"""Small statistics and the two callers every figure compares: the function host over HTTP,
and the bare aio SDK call the handler wraps."""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from datetime import timedelta
from typing import Any, AsyncIterator, Sequence

import aiohttp

from .stack import SCOPES, TOKEN_MINUTES, AppUser


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank), p in 0..100."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "median_ms": round(median(seconds) * 1000, 3),
        "p95_ms": round(percentile(seconds, 95) * 1000, 3),
        "p99_ms": round(percentile(seconds, 99) * 1000, 3),
    }


class FunctionHostClient:
    """POST /api/token as a signed-in user's browser sends it (behind Static Web Apps)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self._session = session
        self._url = f"{base}/api/token"

    async def token(self, user: AppUser, fresh: bool = False, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        headers = {**user.headers, **({"Cache-Control": "no-cache"} if fresh else {})}
        async with self._session.post(self._url, headers=headers, json=body) as response:
            payload = await response.json(content_type=None) if response.content_length != 0 else {}
            return response.status, payload

    async def timed_token(self, user: AppUser, fresh: bool = False) -> tuple[int, float]:
        started = time.perf_counter()
        status, _ = await self.token(user, fresh)
        return status, time.perf_counter() - started


@contextlib.asynccontextmanager
async def sdk_session(acs_endpoint: str) -> AsyncIterator[Any]:
    """The aio SDK client the service itself uses: managed identity through
    DefaultAzureCredential (the stack's identity endpoint is in the environment), long-lived."""
    from azure.communication.identity.aio import CommunicationIdentityClient

    from shared.credentials import new_credential

    credential = new_credential()
    client = CommunicationIdentityClient(acs_endpoint, credential)
    try:
        yield client
    finally:
        await client.close()
        await credential.close()


async def sdk_token(client: Any, communication_user_id: str) -> Any:
    """The bare SDK call behind POST /api/token's warm path: issueAccessToken."""
    from azure.communication.identity import CommunicationUserIdentifier

    return await client.get_token(CommunicationUserIdentifier(communication_user_id), SCOPES,
                                  token_expires_in=timedelta(minutes=TOKEN_MINUTES))


async def timed_sdk_token(client: Any, communication_user_id: str) -> float:
    started = time.perf_counter()
    await sdk_token(client, communication_user_id)
    return time.perf_counter() - started
