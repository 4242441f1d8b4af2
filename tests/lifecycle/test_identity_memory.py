"""What an instance remembers of a user's identity, and for how long (README, "What each instance
remembers"): at most 60 s from the moment the table was last checked; an active user's identity
is checked again in the background 35-55 s after the last check (their tombstone, and the
instance's poll of revocation rows) while their requests are served from memory, so a tombstone
written through another instance is honoured within the 60 s and no table read lands on the
request's path.

The token services run in this test's process against the stack's real Azurite and ACS emulator.
Time passing is simulated by moving a remembered entry's stamp back, as that many seconds going by
would leave it (waiting a minute per case would make the suite slow, and nothing local can stand
in for a clock); the store is the real IdentityStore, counting the reads it makes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import AsyncIterator

import pytest

from shared.acs_identity import AcsIdentityClient
from shared.errors import Forbidden
from shared.identity_store import IdentityStore
from shared.settings import load_settings
from shared.token_service import TokenService
from tests.conftest import User, new_user

SCOPES = ("chat",)


class CountingStore(IdentityStore):
    """The real store, counting its mapping and tombstone point reads."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reads: Counter[str] = Counter()
        #: While set and not yet released, tombstone reads wait on it (a slow table, observed).
        self.hold: asyncio.Event | None = None

    async def get(self, app_user_id: str):
        self.reads["mapping"] += 1
        return await super().get(app_user_id)

    async def is_tombstoned(self, app_user_id: str) -> bool:
        self.reads["tombstone"] += 1
        if self.hold is not None:
            await self.hold.wait()
        return await super().is_tombstoned(app_user_id)


@pytest.fixture
async def parts(stack: dict) -> AsyncIterator[tuple[TokenService, CountingStore, TokenService]]:
    """Instance A (this test's subject, counting its reads) and instance B, sharing the table and ACS."""
    settings = load_settings({"ACS_CONNECTION_STRING": stack["acsConnectionString"],
                              "TABLES_CONNECTION_STRING": stack["tablesConnectionString"]})
    store, other_store, acs = CountingStore(settings), IdentityStore(settings), AcsIdentityClient(settings)
    try:
        yield TokenService(settings, store, acs), store, TokenService(settings, other_store, acs)
    finally:
        await store.close()
        await other_store.close()
        await acs.close()


def _remembered_for(service: TokenService, user: User, seconds: float) -> None:
    """Make the instance's memory of the user as old as ``seconds`` going by would."""
    entries = service._identities._entries
    _, known = entries[user.app_user_id]
    entries[user.app_user_id] = (time.monotonic() - seconds, known)


def _age(service: TokenService, user: User) -> float | None:
    remembered = service._identities.get_with_age(user.app_user_id)
    return None if remembered is None else remembered[1]


async def _background_done(service: TokenService) -> None:
    deadline = time.monotonic() + 30
    while service._background:
        assert time.monotonic() < deadline, "the background check did not finish"
        await asyncio.sleep(0.02)


async def test_an_active_users_identity_is_checked_in_the_background_never_on_their_requests_path(parts):
    service, store, _ = parts
    user = new_user()
    first = await service.issue_token(user.app_user_id, SCOPES, 60, fresh=True)
    assert store.reads == {"mapping": 1, "tombstone": 1}, "the first request reads the mapping and the tombstone"

    # The check's table read is held until the request has been answered: a request that waited
    # for the check would never be answered (the 30 s guard only stops a hang, it times nothing).
    _remembered_for(service, user, 57)
    store.hold = asyncio.Event()
    request = asyncio.ensure_future(service.issue_token(user.app_user_id, SCOPES, 60, fresh=True))
    done, _ = await asyncio.wait({request}, timeout=30)
    held = store.reads["tombstone"] == 2 and not store.hold.is_set()
    store.hold.set()
    assert done, "the request waited for the background check's table read"
    assert held, "the check had begun and its read was still held when the request was answered"
    again = request.result()
    assert again.communication_user_id == first.communication_user_id
    await _background_done(service)
    store.hold = None
    assert store.reads == {"mapping": 1, "tombstone": 2}, "one read checked the identity again: the tombstone"
    age = _age(service, user)
    assert age is not None and age < 30, "the identity is remembered from when the check began"

    for _ in range(3):
        await service.issue_token(user.app_user_id, SCOPES, 60, fresh=True)
    assert store.reads == {"mapping": 1, "tombstone": 2}, "warm requests read nothing from the table"


async def test_a_user_tombstoned_through_another_instance_is_refused_within_the_identity_memory(parts):
    service, _, other = parts
    checked, unchecked = new_user(), new_user()
    for user in (checked, unchecked):
        await service.issue_token(user.app_user_id, SCOPES, 60, fresh=True)
    await other.mark_deleted([checked.app_user_id, unchecked.app_user_id])

    # 57 s after the last check: served from memory (within the bound) while the check runs.
    _remembered_for(service, checked, 57)
    await service.issue_token(checked.app_user_id, SCOPES, 60, fresh=True)
    await _background_done(service)
    with pytest.raises(Forbidden) as refused:
        await service.issue_token(checked.app_user_id, SCOPES, 60, fresh=True)
    assert refused.value.code == "AccountDeleted"

    # No request came between 40 and 60 s, so nothing checked: past 60 s the table is read first.
    _remembered_for(service, unchecked, 61)
    with pytest.raises(Forbidden) as refused:
        await service.issue_token(unchecked.app_user_id, SCOPES, 60, fresh=True)
    assert refused.value.code == "AccountDeleted"


async def test_a_revoke_through_another_instance_makes_the_background_check_read_the_row_again(parts):
    service, store, other = parts
    user = new_user()
    await service.issue_token(user.app_user_id, SCOPES, 60, fresh=True)
    assert await other.revoke_tokens(user.app_user_id)

    _remembered_for(service, user, 57)
    await service.issue_token(user.app_user_id, SCOPES, 60, fresh=True)
    await _background_done(service)
    assert _age(service, user) is None, "a revocation newer than the row this instance read makes it forget the row"
    await service.issue_token(user.app_user_id, SCOPES, 60, fresh=True)
    assert store.reads["mapping"] == 2, "the next request read the mapping again"
    remembered = service._identities.get(user.app_user_id)
    assert remembered is not None and remembered.revoked_at is not None, "and learnt RevokedAt from it"
