"""A TCP proxy the tests can switch off, to cut a function host off from one real dependency.

It forwards bytes untouched (TLS passes through: the client still talks to, and verifies, the
real server's certificate for 127.0.0.1), so an outage it makes is a real one as the client
sees it: while it is ``down()`` nothing listens on its port (connection refused) and every
connection it was carrying is reset. ``up()`` listens on the same port again. The rest of the
local stack keeps running, so other tests are not disturbed.

It runs its own event loop on a thread, so synchronous tests can drive it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Coroutine


class FaultProxy:
    """127.0.0.1:<port> → upstream_host:upstream_port, with an on/off switch."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        #: Connections accepted since start, and bytes forwarded each way (for tests to watch).
        self.connections = 0
        self.bytes_to_upstream = 0
        self.bytes_to_client = 0
        self.last_activity = time.monotonic()
        #: Seconds each chunk from the dependency is held before it is passed on (a slow server).
        self.delay_seconds = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread.start()

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
        """Stop listening and reset every open connection: the dependency has gone away."""
        self._run(self._stop)

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
        for writer in list(self._writers):
            transport = writer.transport
            if transport is not None:
                transport.abort()  # RST, as when the process on the other end dies
        self._writers.clear()
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
        self._writers.update((client_writer, upstream_writer))

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, to_upstream: bool) -> None:
            try:
                while chunk := await reader.read(65536):
                    if not to_upstream and self.delay_seconds > 0:
                        await asyncio.sleep(self.delay_seconds)
                    self.last_activity = time.monotonic()
                    if to_upstream:
                        self.bytes_to_upstream += len(chunk)
                    else:
                        self.bytes_to_client += len(chunk)
                    writer.write(chunk)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if writer.can_write_eof() and not writer.transport.is_closing():
                    try:
                        writer.write_eof()
                    except OSError:
                        pass

        try:
            await asyncio.gather(pump(client_reader, upstream_writer, True), pump(upstream_reader, client_writer, False))
        finally:
            for writer in (client_writer, upstream_writer):
                self._writers.discard(writer)
                writer.close()
