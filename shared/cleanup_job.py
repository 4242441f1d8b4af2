"""The timer function's body: one sweep with the process's settings and a dedicated ACS client
that does not retry on its own (the sweep paces all its workers on Retry-After instead)."""

from __future__ import annotations

from functools import lru_cache

from .acs_identity import AcsIdentityClient
from .cleanup import SweepReport, Sweeper
from .runtime import get_runtime


@lru_cache(maxsize=1)
def _sweeper() -> Sweeper:
    runtime = get_runtime()
    return Sweeper(runtime.settings, runtime.store, AcsIdentityClient(runtime.settings, retries=0))


async def run_cleanup() -> SweepReport:
    return await _sweeper().run()
