"""A new identity whose mapping cannot be written is deleted again: the caller gets 503 with
Retry-After and ACS keeps no orphan (ACS cannot list identities, so an unmapped one would live
forever). Shown for both configurations: managed identity and connection strings.

Table Storage's failure is injected by a small HTTPS proxy in front of the real Azurite (it
serves the stack's own certificate, so the SDK verifies it as usual): reads pass through, entity
inserts answer 503. Azurite itself has no fault injection, and a failure of this one write (after
the lookup succeeded) is what the test needs; everything else is the real stack.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from aiohttp import web

from tests.conftest import CREATES, Api, Emulator, FunctionHost, expect_error, new_user
from tests.table_proxy import TableProxy, is_entity_insert, refused_as_busy


class InsertFailingProxy(TableProxy):
    """Reads and other writes pass through to Azurite; POSTs to a table (inserts) fail with 503."""

    def __init__(self, upstream: str, ca_file: str) -> None:
        self.failed_inserts = 0
        super().__init__(upstream, ca_file)

    async def answer(self, request: web.Request) -> web.Response:
        if is_entity_insert(request):
            self.failed_inserts += 1
            return refused_as_busy("injected")
        return await self.forward(request)


@pytest.fixture(scope="module", params=["managed-identity", "connection-strings"])
def failing_writes(request: pytest.FixtureRequest, stack: dict) -> Iterator[tuple[Api, InsertFailingProxy]]:
    proxy = InsertFailingProxy(stack["tablesEndpoint"], stack["caCertFile"])
    through_proxy = proxy.endpoint
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
