"""A request cancelled while ACS creates its user's identity (the request deadline passed, the
client went away) does not orphan the identity: the create-and-record work finishes on its own
and the identity ends up mapped. The token service runs in this test's process against the
stack's real Azurite and ACS emulator, so the cancellation can be placed while the create is at
ACS: the emulator answers after 1.5 s and shows the create under way."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from shared.acs_identity import AcsIdentityClient
from shared.errors import DependencyUnavailable
from shared.identity_store import IdentityStore
from shared.settings import load_settings
from shared.token_service import TokenService
from tests.conftest import CREATES, Emulator, User, new_user

from .conftest import mapping_row


@asynccontextmanager
async def _token_service(stack: dict) -> AsyncIterator[TokenService]:
    settings = load_settings({"ACS_CONNECTION_STRING": stack["acsConnectionString"],
                              "TABLES_CONNECTION_STRING": stack["tablesConnectionString"]})
    store, acs = IdentityStore(settings), AcsIdentityClient(settings)
    try:
        yield TokenService(settings, store, acs)
    finally:
        await store.close()
        await acs.close()


async def _the_identity_mapped_in_the_end(table, user: User) -> str:
    deadline = time.monotonic() + 30
    while (row := await asyncio.to_thread(mapping_row, table, user)) is None:
        assert time.monotonic() < deadline, "the identity was never mapped"
        await asyncio.sleep(0.2)
    return row["CommunicationUserId"]


async def test_a_request_cancelled_while_acs_creates_the_identity_still_maps_it(
    stack: dict, emulator: Emulator, table, acs_behaves
):
    user = new_user()
    before = await asyncio.to_thread(emulator.identities)
    acs_behaves(latencyMs=1500)
    async with _token_service(stack) as service:
        request = asyncio.create_task(service.issue_token(user.app_user_id, ("chat",), 60))
        await asyncio.to_thread(emulator.wait_until_under_way, *CREATES)
        request.cancel()
        try:
            await request
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the request should have been cancelled before ACS answered")
        mapped = await _the_identity_mapped_in_the_end(table, user)
    made = await asyncio.to_thread(emulator.identities) - before
    assert made == {mapped}, "exactly one identity, and it is the mapped one"


async def test_requests_sharing_a_cancelled_requests_first_call_get_an_answer_and_one_identity_is_made(
    stack: dict, emulator: Emulator, table, acs_behaves
):
    """Concurrent first calls of one user share one create (the first request leads it). When
    that first request is cancelled while ACS creates the identity, the requests that joined it
    are not cancelled with it: each gets a token for the identity that ends up mapped, or a 503
    it can retry (DependencyUnavailable), never a cancellation or a hang; one identity is made."""
    user = new_user()
    before = await asyncio.to_thread(emulator.identities)
    creates = await asyncio.to_thread(emulator.calls, *CREATES)
    acs_behaves(latencyMs=1500)
    async with _token_service(stack) as service:
        leader = asyncio.create_task(service.issue_token(user.app_user_id, ("chat",), 60))
        await asyncio.to_thread(emulator.wait_until_under_way, *CREATES)
        joined = [asyncio.create_task(service.issue_token(user.app_user_id, ("chat",), 60)) for _ in range(3)]
        await asyncio.sleep(0)  # each joined request reaches the first call under way
        leader.cancel()
        outcomes = await asyncio.wait_for(asyncio.gather(*joined, return_exceptions=True), timeout=30)
        assert leader.cancelled()
        mapped = await _the_identity_mapped_in_the_end(table, user)
    for outcome in outcomes:
        assert isinstance(outcome, DependencyUnavailable) or outcome.communication_user_id == mapped, repr(outcome)
    made = await asyncio.to_thread(emulator.identities) - before
    assert made == {mapped}, "exactly one identity, and it is the mapped one"
    assert await asyncio.to_thread(emulator.calls, *CREATES) - creates == 1, "the joined requests shared the one create"
