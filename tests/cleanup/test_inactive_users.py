"""Optional inactivity cleanup (CLEANUP_INACTIVE_DAYS): users not seen for that many days lose
their ACS identity; last-seen is kept with at most one table write a day per user."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.cleanup.test_cleanup import _run_cleanup, _wait_for
from tests.conftest import Api, Emulator, FunctionHost, new_user
from tests.lifecycle.conftest import a_later_last_seen_write_landed


def _row(table, user):
    [row] = list(table.query_entities("AppUserId eq @u and RowKey eq 'identity'", parameters={"u": user.app_user_id}))
    return row


def _age(table, user, days: int) -> None:
    """Pretend the user was last seen ``days`` ago (what time passing would have done)."""
    row = _row(table, user)
    row["LastSeenAt"] = datetime.now(timezone.utc) - timedelta(days=days)
    table.update_entity(row)


@pytest.fixture(scope="module")
def inactivity_host(stack: dict):
    host = FunctionHost(stack, {"CLEANUP_INACTIVE_DAYS": "30"}, "inactive-cleanup")
    yield host
    host.stop()


def test_inactive_users_lose_their_identity_and_active_ones_keep_it(api: Api, emulator: Emulator, table, inactivity_host):
    idle, active = new_user(), new_user()
    idle_id = api.token(idle).json()["communicationUserId"]
    active_id = api.token(active).json()["communicationUserId"]
    _age(table, idle, 100)
    _age(table, active, 3)

    _run_cleanup(inactivity_host.base)
    _wait_for(lambda: idle_id not in emulator.identities(), what="the idle user's identity to go")
    assert active_id in emulator.identities()
    # Not deleted, only idle: coming back simply gives a new identity.
    response = Api(inactivity_host.base).token(idle)
    assert response.status_code == 200
    assert response.json()["communicationUserId"] != idle_id


def test_last_seen_is_written_at_most_once_a_day(api: Api, table, inactivity_host):
    user = new_user()
    api.token(user)
    _age(table, user, 2)
    instance = Api(inactivity_host.base)
    assert instance.token(user).status_code == 200  # cold read sees a two-day-old last-seen
    deadline = time.monotonic() + 10
    while datetime.now(timezone.utc) - _row(table, user)["LastSeenAt"] > timedelta(minutes=5):
        assert time.monotonic() < deadline, "last-seen was not refreshed"
        time.sleep(0.1)
    etag = _row(table, user).metadata["etag"]
    for _ in range(5):
        assert instance.token(user, fresh=True).status_code == 200
    a_later_last_seen_write_landed(instance, api, table)
    assert _row(table, user).metadata["etag"] == etag, "warm token requests must not write the table"
