"""How every local service of the stack waits to be told to stop."""

from __future__ import annotations

import asyncio
import signal


async def until_stopped() -> None:
    """Return on SIGINT (Ctrl-C) or SIGTERM (the launcher stopping the stack), so the caller can
    clean up (flush state, finish in-flight requests) instead of dying mid-write."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
