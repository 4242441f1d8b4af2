"""The sweep honours only tombstones whose key is the one the token service derives from their
AppUserId, and retires a tombstone only once the mapping is gone; a DELETE + POST loop cannot
create identities without bound (IDENTITY_CREATIONS_PER_USER_PER_DAY, per instance)."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

import pytest

from tests.conftest import Api, Emulator, FunctionHost, new_user

from .conftest import ADMIN, mapping_row, run_cleanup, summary_after, tombstone_row


@pytest.fixture(scope="module")
def sweeper(stack: dict):
    host = FunctionHost(stack, {}, "lifecycle-tombstones")
    yield host
    host.stop()


def test_a_tombstone_keyed_with_other_escaping_is_logged_and_skipped_not_looped(
    api: Api, emulator: Emulator, table, sweeper: FunctionHost
):
    """A backend escaped the id its own way ('|' as %7C): the token service never sees that
    tombstone (it looks under its own key), so sweeping it would delete an identity the user gets
    straight back, every run. The sweep skips it, says so, and still sweeps a proper one."""
    stray, proper = new_user(), new_user()
    stray_id = api.token(stray).json()["communicationUserId"]
    proper_id = api.token(proper).json()["communicationUserId"]
    table.upsert_entity({
        "PartitionKey": "tombstones", "RowKey": quote(stray.app_user_id, safe=""),
        "AppUserId": stray.app_user_id, "MarkedAt": datetime.now(timezone.utc),
    })
    api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json={"appUserIds": [proper.app_user_id]})

    lines = len(sweeper.log_text().splitlines())
    run_cleanup(sweeper.base)
    summary = summary_after(sweeper, lines)
    assert "mismatched=0" not in summary, summary
    assert stray_id in emulator.identities() and mapping_row(table, stray) is not None
    assert not tombstone_row(table, stray).get("SweptAt")
    assert "RowKey that is not the escaped AppUserId" in sweeper.log_text()
    assert proper_id not in emulator.identities() and tombstone_row(table, proper)["SweptAt"]
    assert stray.app_user_id not in sweeper.log_text(), "logs name users by reference only"
    table.delete_entity("tombstones", quote(stray.app_user_id, safe=""))


def test_a_delete_and_create_loop_stops_at_the_daily_creation_budget(stack: dict, emulator: Emulator):
    host = FunctionHost(stack, {"IDENTITY_CREATIONS_PER_USER_PER_DAY": "2"}, "lifecycle-budget")
    try:
        api = Api(host.base)
        user = new_user()
        creates = emulator.calls("createIdentity", "createIdentityAndToken")
        assert api.token(user).status_code == 200
        assert api.call("DELETE", "/api/identity", user).status_code == 204
        assert api.token(user).status_code == 200
        assert api.call("DELETE", "/api/identity", user).status_code == 204
        refused = api.token(user)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "TooManyIdentityCreations"
        assert 80_000 < int(refused.headers["Retry-After"]) <= 86_400
        assert emulator.calls("createIdentity", "createIdentityAndToken") - creates == 2
        assert api.token(new_user()).status_code == 200, "other users are not affected"
    finally:
        host.stop()
