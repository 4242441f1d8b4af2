"""TLS connections this process opens, by the port it connects to: P6 asks whether an instance
under steady keep-alive load still opens new connections (each costs a TLS handshake on the
instance's core), and to which dependency. Counts only; no connection takes another path.
Installed by bench.gc_meter, so both sides of P6 count over the same window."""

from __future__ import annotations

import collections
from typing import Any

COUNTS: collections.Counter[str] = collections.Counter()


def install() -> None:
    import asyncio.sslproto as sslproto

    original = sslproto.SSLProtocol.connection_made
    if getattr(original, "_bench_counted", False):
        return

    def connection_made(self: Any, transport: Any) -> None:
        peer = transport.get_extra_info("peername")
        COUNTS[str(peer[1]) if peer else "?"] += 1
        original(self, transport)

    connection_made._bench_counted = True  # type: ignore[attr-defined]
    sslproto.SSLProtocol.connection_made = connection_made


def snapshot() -> dict[str, int]:
    return dict(COUNTS)


def since(before: dict[str, int]) -> dict[str, int]:
    return {port: count - before.get(port, 0) for port, count in COUNTS.items() if count - before.get(port, 0)}
