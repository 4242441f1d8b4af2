"""An HTTPS proxy in front of Azurite's table endpoint, for tests that need Table Storage to fail
in one exact way (one kind of write, one reply) or to see every request the app sends: Azurite
itself has no fault injection. It serves the stack's own certificate, so the SDK verifies it as
usual, and forwards each request byte for byte, as signed; everything behind it is the real stack.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path

import aiohttp
import yarl
from aiohttp import web

#: Hop-by-hop and length headers the proxy's own server sets for the answer it sends on.
_NOT_FORWARDED = ("content-length", "transfer-encoding", "content-encoding")


def is_entity_insert(request: web.Request) -> bool:
    """A POST to a table (``/devstoreaccount1/Table``): one entity inserted, not a batch."""
    return request.method == "POST" and "$batch" not in request.path and request.path.count("/") == 2


def refused_as_busy(message: str) -> web.Response:
    """Table Storage's answer when it cannot take a request now."""
    return web.json_response({"odata.error": {"code": "ServerBusy", "message": {"value": message}}}, status=503)


class TableProxy:
    """Forwards every request to Azurite unchanged; a test's proxy changes :meth:`answer`.
    Listens on a port the system chose (``port``), on a thread of its own."""

    def __init__(self, upstream: str, ca_file: str) -> None:
        self.port = 0
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")

    @property
    def endpoint(self) -> str:
        """The table endpoint to give the app instead of Azurite's."""
        return f"https://127.0.0.1:{self.port}/devstoreaccount1"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=self.ca_file)))
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        pki = Path(self.ca_file).parent
        served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        served.load_cert_chain(pki / "server.pem", pki / "server.key")
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=served)  # port 0: never a taken port
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def answer(self, request: web.Request) -> web.Response:
        return await self.forward(request)

    async def forward(self, request: web.Request) -> web.Response:
        """Azurite's own answer to the request."""
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        origin = self.upstream.split("/devstoreaccount1")[0]
        target = yarl.URL(origin + request.raw_path, encoded=True)  # as signed: no re-encoding
        async with self._session.request(request.method, target, headers=headers, data=body or None) as answer:
            payload = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED}
            return web.Response(status=answer.status, body=payload, headers=out)

    def stop(self) -> None:
        async def close() -> None:
            await self._runner.cleanup()
            await self._session.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
