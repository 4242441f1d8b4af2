"""An issue on its way to ACS is shared only with requests that come less than
REVOCATION_CHECK_SECONDS after it began (README: "no instance hands out a token issued before a
revoke later than REVOCATION_CHECK_SECONDS after that revoke was answered").

The case no poll covers: instance B has no recent token for the request's scopes and lifetime, so
nothing makes it read the revocation rows before it issues; only the window keeps a plain request
from joining B's issue that began before a revoke made through instance A.

The token services run in this test's process against the stack's real Azurite and ACS emulator;
B's ACS answer is held after ACS issued the token (the emulator counts it), which is what a slow
network path does. The verdict on the token is the emulator's.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from shared.acs_identity import AcsIdentityClient
from shared.identity_store import IdentityStore
from shared.settings import load_settings
from shared.token_service import TokenService
from tests.conftest import Emulator, new_user

SCOPES = ("chat",)
BOUND = 1.0  # REVOCATION_CHECK_SECONDS


class HeldAcs(AcsIdentityClient):
    """The real ACS client whose next token answer, once ``hold_next`` is called, waits for
    ``release`` after ACS has issued it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next: asyncio.Event | None = None
        self._gates: list[asyncio.Event] = []
        self.issued = asyncio.Event()

    def hold_next(self) -> None:
        self._next = asyncio.Event()
        self._gates.append(self._next)

    def release(self) -> None:
        for gate in self._gates:
            gate.set()

    async def issue_token(self, communication_user_id, scopes, minutes):
        gate, self._next = self._next, None
        token = await super().issue_token(communication_user_id, scopes, minutes)
        if gate is not None:
            self.issued.set()
            await gate.wait()
        return token


@pytest.fixture
async def instances(stack: dict) -> AsyncIterator[tuple[TokenService, TokenService, HeldAcs]]:
    settings = load_settings({"ACS_CONNECTION_STRING": stack["acsConnectionString"],
                              "TABLES_CONNECTION_STRING": stack["tablesConnectionString"],
                              "REVOCATION_CHECK_SECONDS": str(BOUND)})
    a_store, b_store = IdentityStore(settings), IdentityStore(settings)
    a_acs, b_acs = AcsIdentityClient(settings), HeldAcs(settings)
    try:
        yield TokenService(settings, a_store, a_acs), TokenService(settings, b_store, b_acs), b_acs
    finally:
        b_acs.release()
        for part in (a_store, b_store, a_acs, b_acs):
            await part.close()


async def test_a_plain_request_later_than_the_bound_after_a_revoke_never_joins_an_issue_from_before_it(
    instances, emulator: Emulator
):
    a, b, b_acs = instances
    user = new_user()
    await a.issue_token(user.app_user_id, SCOPES, 60)
    await b.issue_token(user.app_user_id, SCOPES, 61)  # B remembers the identity, no token for 60 minutes
    issued_before = emulator.calls("issueAccessToken")

    b_acs.hold_next()
    first = asyncio.ensure_future(b.issue_token(user.app_user_id, SCOPES, 60))
    await b_acs.issued.wait()  # ACS issued it: a token from before the revoke, in flight
    assert await a.revoke_tokens(user.app_user_id)
    await asyncio.sleep(BOUND + 0.5)  # the next request comes well after the bound

    late = asyncio.ensure_future(b.issue_token(user.app_user_id, SCOPES, 60))
    # Room for the late request's own issue (it is not held); the verdict below is the assertion.
    await asyncio.wait({late}, timeout=10)
    b_acs.release()
    first_token, late_token = await asyncio.gather(first, late)
    assert emulator.verify(first_token.token)["revoked"], "the held token was issued before the revoke"
    verdict = emulator.verify(late_token.token)
    assert not verdict["revoked"], (
        f"B handed a request sent {BOUND + 0.5:g} s after the revoke was answered (bound {BOUND:g} s) a token "
        f"issued before it: the request joined an issue in flight from before the revoke ({verdict})"
    )
    assert emulator.calls("issueAccessToken") - issued_before == 2, "the late request had its own issue"
