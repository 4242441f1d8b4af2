"""A TCP proxy between a function host and one real dependency, which breaks it where a test chooses.

It forwards bytes untouched (TLS passes through: the client still talks to, and verifies, the
real server's certificate for 127.0.0.1), so a fault it makes is a real one as the client sees it:

- ``down()``: nothing listens on its port (connection refused) and every connection it was
  carrying is reset, as when the process on the other end dies; ``up()`` listens on the same
  port again. ``cut()`` resets every connection but keeps listening.
- ``hold()``: requests reach the dependency (which acts on them: ACS makes the identity), while
  nothing of the answer reaches the host until ``release()`` or ``cut()``. That places a failure
  between "the dependency did it" and "the service learnt it", which no latency setting can do
  reliably.
- ``drop_requests()``: what the host sends is swallowed (a one-way partition: connections stay
  open, and the host waits for answers that cannot come).
- ``delay_seconds``: each chunk of the dependency's answer waits this long (a slow server).

The counters (connections, bytes each way, held and dropped bytes, the last activity) let a test
wait for the point it means to break at, instead of guessing a time. The rest of the local stack
keeps running, so other tests are not disturbed.

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
    """One proxied connection: the host's side, the dependency's side, and replies held back."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    held: list[bytes] = field(default_factory=list)
    #: The dependency finished its side while replies were held: end the host's side on release.
    upstream_ended: bool = False


def _end(writer: asyncio.StreamWriter) -> None:
    """Pass an end of stream on (a half-close), if the connection is still open."""
    if writer.can_write_eof() and not writer.transport.is_closing():
        try:
            writer.write_eof()
        except OSError:
            pass


class FaultProxy:
    """127.0.0.1:<port> → upstream_host:upstream_port, with down/up, cut, hold/release, drop and delay."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        #: Connections accepted since start, and bytes forwarded each way (for tests to watch).
        self.connections = 0
        self.bytes_to_upstream = 0
        self.bytes_to_client = 0
        #: Bytes of answers held back now, and bytes of requests swallowed since start.
        self.held_bytes = 0
        self.dropped_bytes = 0
        self.last_activity = time.monotonic()
        #: Seconds each chunk from the dependency is held before it is passed on (a slow server).
        self.delay_seconds = 0.0
        self._holding = False
        self._dropping = False
        self._links: set[_Link] = set()
        self._server: asyncio.base_events.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self.up()

    # -- control (from any thread) ----------------------------------------------------------

    def _run(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(make(), self._loop)
        return future.result(timeout=30)

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def up(self) -> "FaultProxy":
        """Listen (again) on the proxy's port; the first call picks a free port."""
        self._run(self._listen)
        return self

    def down(self) -> None:
        """Stop listening and reset every open connection: the dependency has gone away (held
        replies are lost)."""
        self._run(self._stop)

    def cut(self) -> None:
        """Reset every open connection (held replies are lost) but keep listening."""
        self._run(self._abort_all)

    def hold(self) -> None:
        """From now on, keep the dependency's replies instead of passing them on."""
        self._run(self._hold)

    def release(self) -> None:
        """Pass on every held reply, in order, and stop holding."""
        self._run(self._release)

    def drop_requests(self) -> None:
        """From now on, swallow what the host sends: its requests never reach the dependency, and
        it waits for answers that cannot come. A cut or down ends this."""
        self._run(self._drop)

    def pass_requests(self) -> None:
        """Stop swallowing: new requests reach the dependency again (those swallowed stay unanswered)."""
        self._run(self._pass)

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._stop)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def wait_quiet(self, seconds: float, timeout: float = 30) -> None:
        """Block until no byte has crossed the proxy for ``seconds`` (a request has finished)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_activity >= seconds:
                return
            time.sleep(seconds / 4)
        raise TimeoutError("the proxy never went quiet")

    # -- the loop's side --------------------------------------------------------------------

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
            if link.upstream_ended:
                _end(link.client)
            try:
                await link.client.drain()
            except (ConnectionError, OSError):
                pass

    async def _abort_all(self) -> None:
        for link in list(self._links):
            link.held.clear()
            for writer in (link.client, link.upstream):
                if writer.transport is not None:
                    writer.transport.abort()  # RST, as when the process on the other end dies
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
        self.connections += 1
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
            finally:
                _end(upstream_writer)

        async def to_client() -> None:
            try:
                while chunk := await upstream_reader.read(65536):
                    if self.delay_seconds > 0:
                        await asyncio.sleep(self.delay_seconds)
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
            finally:
                if link.held:
                    link.upstream_ended = True
                else:
                    _end(client_writer)

        try:
            await asyncio.gather(to_upstream(), to_client())
        finally:
            self._links.discard(link)
            for writer in (client_writer, upstream_writer):
                writer.close()
