"""A TCP proxy that breaks a dependency at the exact point a test chooses.

Like tests/reliability/fault_proxy.py it forwards bytes untouched (TLS passes through, so the
client still verifies the real server's certificate), but it can also HOLD the dependency's
replies: requests reach the server (which acts on them: ACS makes the identity), while nothing of
the answer reaches the function host until the test releases it or cuts the connection. That lets
a test place a failure between "the dependency did it" and "the service learnt it", which no
latency setting can do reliably.

It runs its own event loop on a thread, so synchronous tests can drive it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    held: list[bytes] = field(default_factory=list)


class ChaosProxy:
    """127.0.0.1:<port> → upstream, with hold/release of replies, cut (RST) and down/up."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.bytes_to_client = 0
        self.bytes_to_upstream = 0
        self.held_bytes = 0
        self.dropped_bytes = 0
        self.last_activity = time.monotonic()
        self._holding = False
        self._dropping = False
        self._links: set[_Link] = set()
        self._server: asyncio.base_events.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy", daemon=True)
        self._thread.start()
        self.up()

    # -- control (any thread) -----------------------------------------------------------------

    def _run(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(make(), self._loop)
        return future.result(timeout=30)

    def up(self) -> "ChaosProxy":
        self._run(self._listen)
        return self

    def down(self) -> None:
        """Stop listening and reset every open connection (held replies are lost)."""
        self._run(self._stop)

    def hold(self) -> None:
        """From now on, keep the dependency's replies instead of passing them on."""
        self._run(self._hold)

    def release(self) -> None:
        """Pass on every held reply, in order, and stop holding."""
        self._run(self._release)

    def drop_requests(self) -> None:
        """From now on, swallow what the host sends (a one-way partition: its requests never reach
        the dependency, and it waits for answers that cannot come)."""
        self._run(self._drop)

    def pass_requests(self) -> None:
        """Stop swallowing: new requests reach the dependency again (those swallowed stay unanswered)."""
        self._run(self._pass)

    def cut(self) -> None:
        """Reset every open connection (held replies are lost) but keep listening."""
        self._run(self._abort_all)

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._stop)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def wait_quiet(self, seconds: float, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_activity >= seconds:
                return
            time.sleep(seconds / 4)
        raise TimeoutError("the proxy never went quiet")

    # -- the loop's side ----------------------------------------------------------------------

    async def _hold(self) -> None:
        self._holding = True

    async def _drop(self) -> None:
        self._dropping = True

    async def _pass(self) -> None:
        self._dropping = False

    async def _release(self) -> None:
        self._holding = False
        for link in list(self._links):
            while link.held:
                chunk = link.held.pop(0)
                self.held_bytes -= len(chunk)
                self.bytes_to_client += len(chunk)
                link.client.write(chunk)
            try:
                await link.client.drain()
            except (ConnectionError, OSError):
                pass

    async def _abort_all(self) -> None:
        for link in list(self._links):
            link.held.clear()
            for writer in (link.client, link.upstream):
                if writer.transport is not None:
                    writer.transport.abort()
        self._links.clear()
        self.held_bytes = 0
        self._dropping = False

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock)

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._abort_all()
        if server is not None:
            await server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.last_activity = time.monotonic()
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        link = _Link(client_writer, upstream_writer)
        self._links.add(link)

        async def to_upstream() -> None:
            try:
                while chunk := await client_reader.read(65536):
                    self.last_activity = time.monotonic()
                    if self._dropping:
                        self.dropped_bytes += len(chunk)
                        continue
                    self.bytes_to_upstream += len(chunk)
                    upstream_writer.write(chunk)
                    await upstream_writer.drain()
            except (ConnectionError, OSError):
                pass

        async def to_client() -> None:
            try:
                while chunk := await upstream_reader.read(65536):
                    self.last_activity = time.monotonic()
                    if self._holding or link.held:
                        link.held.append(chunk)
                        self.held_bytes += len(chunk)
                        continue
                    self.bytes_to_client += len(chunk)
                    client_writer.write(chunk)
                    await client_writer.drain()
            except (ConnectionError, OSError):
                pass

        try:
            await asyncio.gather(to_upstream(), to_client())
        finally:
            self._links.discard(link)
            for writer in (client_writer, upstream_writer):
                writer.close()
