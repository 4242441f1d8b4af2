"""Concurrent calls for the same key share one in-flight operation.

A page reload storm or 50 tabs opening at once must cost ACS one call per user, not one per
request; and concurrent first calls of one user must create one identity, not fifty.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from .errors import DependencyUnavailable

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Per-key deduplication of concurrent awaitables (results are not cached afterwards)."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        existing = self._inflight.get(key)
        if existing is not None:
            return await asyncio.shield(existing)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await make()
        except asyncio.CancelledError:
            # The leader was cancelled (its invocation ended); the waiters were not, and must get
            # an answer they can report rather than a cancellation of their own.
            future.set_exception(DependencyUnavailable("The operation was interrupted; try again.", retry_after=1))
            future.exception()
            raise
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters may be none
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]
