"""LastSeenAt is kept current whether or not inactivity cleanup is on, so switching it on never
deletes the identity of someone who used the service within CLEANUP_INACTIVE_DAYS; a row whose
last-seen was never kept is never judged inactive (ACS deletion cannot be undone).

Time passing is simulated by moving the row's LastSeenAt back, as a day going by would leave it.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from shared.acs_identity import AcsIdentityClient
from shared.identity_store import IdentityStore
from shared.settings import load_settings
from shared.token_service import TokenService
from tests.conftest import Api, Emulator, FunctionHost, User, new_user

from .conftest import a_later_last_seen_write_landed, mapping_row, run_cleanup, summary_after, wait_for


def _set(table, user: User, **values) -> None:
    row = mapping_row(table, user)
    row.update(values)
    table.update_entity(row, mode="replace")


def _ago(days: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(days=days)


@pytest.fixture(scope="module")
def switched_on(stack: dict):
    host = FunctionHost(stack, {"CLEANUP_INACTIVE_DAYS": "30"}, "lifecycle-inactivity-on")
    yield host
    host.stop()


async def test_daily_user_for_90_days_with_cleanup_off_keeps_their_identity_when_it_is_switched_on(
    stack: dict, switched_on: FunctionHost, emulator: Emulator, table
):
    """Each simulated day the user's request reaches an instance of the app with inactivity
    cleanup off that does not remember them (an instance remembers a user for 60 s, and a day
    has passed): the token service runs in this test's process, a fresh one per day, against
    the stack's real Azurite and ACS emulator. Then a host with cleanup on sweeps."""
    settings = load_settings({"ACS_CONNECTION_STRING": stack["acsConnectionString"],
                              "TABLES_CONNECTION_STRING": stack["tablesConnectionString"],
                              "CLEANUP_INACTIVE_DAYS": "0"})
    store, acs = IdentityStore(settings), AcsIdentityClient(settings)
    daily, idle = new_user(), new_user()
    try:
        first_day = TokenService(settings, store, acs)
        daily_id = (await first_day.issue_token(daily.app_user_id, ("chat",), 60)).communication_user_id
        idle_id = (await first_day.issue_token(idle.app_user_id, ("chat",), 60)).communication_user_id
        await asyncio.to_thread(_set, table, daily, CreatedAt=_ago(90))
        for day in range(90):
            # A day has gone by since the last recorded use.
            await asyncio.to_thread(_set, table, daily, LastSeenAt=_ago(1.01))
            todays_instance = TokenService(settings, store, acs)
            await todays_instance.issue_token(daily.app_user_id, ("chat",), 60)
            deadline = time.monotonic() + 30
            while (await asyncio.to_thread(mapping_row, table, daily))["LastSeenAt"] < _ago(0.01):
                assert time.monotonic() < deadline, f"day {day}'s use was not recorded"
                await asyncio.sleep(0.05)
    finally:
        await store.close()
        await acs.close()
    # The idle user, by contrast, really has not been seen for 100 days (kept last-seen).
    await asyncio.to_thread(_set, table, idle, LastSeenAt=_ago(100))

    lines = len(switched_on.log_text().splitlines())
    await asyncio.to_thread(run_cleanup, switched_on.base)
    await asyncio.to_thread(summary_after, switched_on, lines)
    live = await asyncio.to_thread(emulator.identities)
    assert daily_id in live and await asyncio.to_thread(mapping_row, table, daily) is not None
    assert idle_id not in live and await asyncio.to_thread(mapping_row, table, idle) is None


def test_rows_whose_last_seen_was_never_kept_are_never_judged_inactive(
    api: Api, switched_on: FunctionHost, emulator: Emulator, table
):
    """A row as written before last-seen was kept on every use: LastSeenAt is its creation
    date, months ago, and says nothing about use. Its identity stays."""
    user = new_user()
    identity = api.token(user).json()["communicationUserId"]
    row = mapping_row(table, user)
    legacy = {k: v for k, v in row.items() if k != "LastSeenKept"}
    legacy.update(CreatedAt=_ago(200), LastSeenAt=_ago(200))
    table.upsert_entity(legacy, mode="replace")

    lines = len(switched_on.log_text().splitlines())
    run_cleanup(switched_on.base)
    summary_after(switched_on, lines)
    assert identity in emulator.identities() and mapping_row(table, user) is not None


def test_the_first_use_after_an_upgrade_makes_last_seen_trustworthy(api: Api, instance_b: Api, table):
    user = new_user()
    api.token(user)
    row = mapping_row(table, user)
    legacy = {k: v for k, v in row.items() if k != "LastSeenKept"}
    legacy["LastSeenAt"] = _ago(200)
    table.upsert_entity(legacy, mode="replace")
    assert instance_b.token(user).status_code == 200  # B reads the row on this, its first call
    wait_for(lambda: mapping_row(table, user).get("LastSeenKept") is True, "last-seen to be kept")
    assert mapping_row(table, user)["LastSeenAt"] > _ago(0.01)


def test_warm_requests_write_last_seen_at_most_once_a_day_with_cleanup_off(api: Api, instance_b: Api, table):
    user = new_user()
    api.token(user)
    etag = mapping_row(table, user).metadata["etag"]
    for _ in range(5):
        assert api.token(user, fresh=True).status_code == 200
        assert api.token(user).status_code == 200
    a_later_last_seen_write_landed(api, instance_b, table)
    assert mapping_row(table, user).metadata["etag"] == etag, "a user seen today is not written again"


def test_sweep_rereads_the_row_and_spares_a_user_seen_since_the_scan(
    api: Api, stack: dict, emulator: Emulator, table, acs_behaves
):
    """Two inactive users; ACS is slow (3 s) and the sweep deletes one at a time. While it
    deletes the first, the second comes back (to an instance that reads their row): the sweep
    reads the row again right before deleting and spares them."""
    first, second = User(f"aaa-{new_user().user_id}"), User(f"zzz-{new_user().user_id}")
    first_id = api.token(first).json()["communicationUserId"]
    second_id = api.token(second).json()["communicationUserId"]
    _set(table, first, LastSeenAt=_ago(100))
    _set(table, second, LastSeenAt=_ago(100))
    host = FunctionHost(stack, {"CLEANUP_INACTIVE_DAYS": "30", "CLEANUP_CONCURRENCY": "1"}, "lifecycle-reread")
    try:
        acs_behaves(latencyMs=3000)
        lines = len(host.log_text().splitlines())
        run_cleanup(host.base)
        # The sweep has listed both rows and is deleting the first user's identity.
        emulator.wait_until_under_way("deleteIdentity", identity=first_id)
        assert Api(host.base).token(second).status_code == 200
        wait_for(lambda: mapping_row(table, second)["LastSeenAt"] > _ago(0.01), "the return to be recorded")
        summary = summary_after(host, lines, seconds=120)
    finally:
        host.stop()
    assert re.search(r"kept_active=[1-9]", summary), summary
    assert second_id in emulator.identities() and mapping_row(table, second)["CommunicationUserId"] == second_id
    assert first_id not in emulator.identities()
