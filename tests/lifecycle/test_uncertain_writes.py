"""Writes whose reply is lost are never retried blindly and never mistaken for a lost race.

- ACS create: not idempotent, so the service never re-sends it. When ACS makes the identity and
  the reply then fails (an emulator fault that commits first), the caller gets 503, the service
  logs the failure with ACS's MS-CV and counts it, and no second identity is made.
- Table insert: the Tables SDK re-sends a conditional insert whose reply was lost; the re-send
  meets the row the first one wrote (409). A small proxy in front of the real Azurite lets the
  first insert through and then answers 503 in its place (Azurite has no fault injection; the
  proxy is the only stand-in, everything else is the real stack).
"""

from __future__ import annotations

import re
from typing import Iterator

import pytest
from aiohttp import web

from tests.conftest import Api, Emulator, FunctionHost, new_user
from tests.table_proxy import TableProxy, is_entity_insert, refused_as_busy

from .conftest import control, mapping_row


@pytest.fixture(scope="module")
def watched(stack: dict) -> Iterator[FunctionHost]:
    """An instance whose log the test reads."""
    host = FunctionHost(stack, {}, "lifecycle-uncertain")
    yield host
    host.stop()


def test_a_create_whose_reply_fails_after_acs_made_it_is_503_logged_with_ms_cv_and_counted(
    watched: FunctionHost, emulator: Emulator, table, stack: dict
):
    api = Api(watched.base)
    user = new_user()
    before = emulator.stats()
    recorded_before = len(before.get("committedThenFailed", []))
    control(emulator, "POST", "faults", json={"status": 500, "count": 1, "operations": ["createIdentity"], "commit": True})
    try:
        response = api.token(user)
    finally:
        emulator.clear_faults()
    assert response.status_code == 503 and "Retry-After" in response.headers
    after = emulator.stats()
    creates = sum(after["calls"].get(op, 0) - before["calls"].get(op, 0) for op in ("createIdentity", "createIdentityAndToken"))
    assert creates == 1, "a create is never re-sent"
    [lost] = after["committedThenFailed"][recorded_before:]
    assert lost["identity"] in emulator.identities()  # ACS made it; nobody can learn its id
    assert mapping_row(table, user) is None
    lines = [line for line in watched.log_text().splitlines() if "outcome unknown" in line]
    assert any(f"ms_cv={lost['msCv']}" in line for line in lines), "the lost create is logged with ACS's MS-CV"
    assert re.search(r"uncertain_creates=\d+", lines[-1])
    # The user's next request works and makes one new identity.
    again = api.token(user)
    assert again.status_code == 200 and again.json()["communicationUserId"] != lost["identity"]
    # Test cleanup only (an operator could not do this: the id is known here from the emulator),
    # so later tests' "every live identity is mapped" checks start clean.
    _delete_at_acs(stack, lost["identity"])


def _delete_at_acs(stack: dict, communication_user_id: str) -> None:
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

    CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"]).delete_user(
        CommunicationUserIdentifier(communication_user_id)
    )


def test_an_acs_failure_is_logged_with_its_ms_cv(watched: FunctionHost, emulator: Emulator):
    api = Api(watched.base)
    user = new_user()
    assert api.token(user).status_code == 200
    emulator.fault(503, count=10, operations=["issueAccessToken"], retry_after=None)
    try:
        assert api.token(user, fresh=True).status_code == 503
    finally:
        emulator.clear_faults()
    assert re.search(r"acs issue_token failed: 503 \S+ ms_cv=[A-Za-z0-9+/]{22}\.0", watched.log_text())


class ReplyLosingProxy(TableProxy):
    """The first entity insert reaches Azurite, but its reply is replaced by a 503, as when the
    connection drops after the write."""

    def __init__(self, upstream: str, ca_file: str) -> None:
        self.lost_replies = 0
        self.inserts = 0
        super().__init__(upstream, ca_file)

    async def answer(self, request: web.Request) -> web.Response:
        answer = await self.forward(request)
        if not is_entity_insert(request):
            return answer
        self.inserts += 1
        if answer.status == 201 and self.lost_replies == 0:
            self.lost_replies += 1
            return refused_as_busy("reply lost")
        return answer


def test_an_insert_whose_reply_was_lost_is_recognised_as_ours_by_reading_the_row_back(
    stack: dict, emulator: Emulator, table
):
    proxy = ReplyLosingProxy(stack["tablesEndpoint"], stack["caCertFile"])
    account_key = stack["tablesConnectionString"].split("AccountKey=")[1].split(";")[0]
    host = FunctionHost(stack, {
        "TABLES_ENDPOINT": "",
        "TABLES_CONNECTION_STRING": (
            f"DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey={account_key};"
            f"TableEndpoint={proxy.endpoint};"
        ),
    }, "lifecycle-lost-insert-reply")
    try:
        user = new_user()
        before = emulator.identities()
        response = Api(host.base).token(user)
        assert response.status_code == 200, response.text
        assert proxy.lost_replies == 1 and proxy.inserts == 2, "the SDK re-sent the insert and met our own row"
        made = emulator.identities() - before
        assert made == {response.json()["communicationUserId"]}, "one identity, kept (not deleted as a lost race)"
        assert mapping_row(table, user)["CommunicationUserId"] == response.json()["communicationUserId"]
        assert emulator.verify(response.json()["token"])["valid"]
    finally:
        host.stop()
        proxy.stop()
