"""A new identity whose mapping cannot be written is deleted again: the caller gets 503 with
Retry-After and ACS keeps no orphan (ACS cannot list identities, so an unmapped one would live
forever). Shown for both configurations: managed identity and connection strings.

Table Storage's failure is injected by a small HTTPS proxy in front of the real Azurite (it
serves the stack's own certificate, so the SDK verifies it as usual): reads pass through, entity
inserts answer 503. Azurite itself has no fault injection, and a failure of this one write (after
the lookup succeeded) is what the test needs; everything else is the real stack.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path
from typing import Iterator

import aiohttp
import pytest
import yarl
from aiohttp import web

from tests.conftest import CREATES, Api, Emulator, FunctionHost, expect_error, new_user


class InsertFailingProxy:
    """Forwards HTTPS to Azurite's table endpoint; POSTs to a table (inserts) fail with 503."""

    def __init__(self, upstream: str, ca_file: str) -> None:
        self.port = 0
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self.failed_inserts = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=self.ca_file)))
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        pki = Path(self.ca_file).parent
        served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        served.load_cert_chain(pki / "server.pem", pki / "server.key")
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=served)  # port 0: never a taken port
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _forward(self, request: web.Request) -> web.Response:
        if request.method == "POST" and "$batch" not in request.path and request.path.count("/") == 2:
            self.failed_inserts += 1
            return web.json_response({"odata.error": {"code": "ServerBusy", "message": {"value": "injected"}}}, status=503)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        upstream_origin = self.upstream.split("/devstoreaccount1")[0]
        target = yarl.URL(upstream_origin + request.raw_path, encoded=True)  # as signed: no re-encoding
        async with self._session.request(request.method, target, headers=headers, data=body or None) as answer:
            payload = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")}
            return web.Response(status=answer.status, body=payload, headers=out)

    def stop(self) -> None:
        async def close() -> None:
            await self._runner.cleanup()
            await self._session.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture(scope="module", params=["managed-identity", "connection-strings"])
def failing_writes(request: pytest.FixtureRequest, stack: dict) -> Iterator[tuple[Api, InsertFailingProxy]]:
    proxy = InsertFailingProxy(stack["tablesEndpoint"], stack["caCertFile"])
    through_proxy = f"https://127.0.0.1:{proxy.port}/devstoreaccount1"
    if request.param == "managed-identity":
        overrides = {"TABLES_ENDPOINT": through_proxy}
    else:
        account_key = stack["tablesConnectionString"].split("AccountKey=")[1].split(";")[0]
        overrides = {
            "TABLES_ENDPOINT": "",
            "TABLES_CONNECTION_STRING": (
                f"DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey={account_key};"
                f"TableEndpoint={through_proxy};"
            ),
        }
    host = FunctionHost(stack, overrides, f"failing-writes-{request.param}")
    yield Api(host.base), proxy
    host.stop()
    proxy.stop()


def test_failed_mapping_write_deletes_the_new_identity_and_reports_503(failing_writes, emulator: Emulator, table):
    api, proxy = failing_writes
    user = new_user()
    before = emulator.identities()
    created, deleted = emulator.calls(*CREATES), emulator.calls("deleteIdentity")
    inserts = proxy.failed_inserts
    response = api.token(user)
    expect_error(response, 503, "ServiceUnavailable")
    assert proxy.failed_inserts > inserts, "the mapping write never reached the table"
    # ACS did make an identity, and the service deleted exactly that one again.
    assert emulator.calls(*CREATES) - created == 1, "the identity was never created: the cut came too early"
    assert emulator.calls("deleteIdentity") - deleted == 1, "the identity made for the failed mapping was not deleted"
    assert emulator.identities() == before, "the identity made for the failed mapping must be deleted"
    assert list(table.query_entities("AppUserId eq @u", parameters={"u": user.app_user_id})) == []


def test_the_same_user_succeeds_once_writes_work_again(failing_writes, api: Api, emulator: Emulator):
    failing_api, _ = failing_writes
    user = new_user()
    expect_error(failing_api.token(user), 503, "ServiceUnavailable")
    response = api.token(user)  # another instance, healthy storage
    assert response.status_code == 200
    assert emulator.verify(response.json()["token"])["valid"]
    assert api.call("GET", "/api/identity", user).json() == {
        "appUserId": user.app_user_id, "communicationUserId": response.json()["communicationUserId"]}
