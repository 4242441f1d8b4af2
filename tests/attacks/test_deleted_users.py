"""A user the app has deleted (tombstoned) gets nothing from the service until the tombstone
goes: not a token for their identity, and not a Teams token exchanged in their name either."""

from __future__ import annotations

import uuid

from tests.attacks.conftest import remove_tombstone
from tests.conftest import Api, Emulator, expect_error, new_user
from tests.trust.conftest import teams_token

#: The local stack's own host exchanges Teams tokens of any app and tenant.
APP = "0d8f5e2a-4444-4b1c-9d2e-3f4a5b6c7d8e"


def test_a_deleted_user_cannot_exchange_a_teams_token(api: Api, stack: dict, table):
    user = new_user()
    assert api.token(user).status_code == 200
    admin = new_user(roles=("anonymous", "authenticated", "admin"))
    marked = api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": [user.app_user_id]})
    assert marked.status_code == 202 and marked.json() == {"marked": 1, "matched": 1}
    try:
        expect_error(api.token(user, fresh=True), 403, "AccountDeleted")
        oid = str(uuid.uuid4())
        body = {"teamsToken": teams_token(stack, oid, APP), "appId": APP, "userId": oid}
        response = api.call("POST", "/api/teams/token", user, json=body)
        expect_error(response, 403, "AccountDeleted")
    finally:
        api.call("DELETE", "/api/identity", user)
        remove_tombstone(table, user.app_user_id)


def test_tokens_a_user_held_stop_working_when_the_app_marks_them_deleted(api: Api, emulator: Emulator, table):
    """Marking a user deleted stops new tokens at once, but the tokens they already hold (up to
    24 hours each) keep working until the next sweep deletes the identity, which by default runs
    once a day. The operator endpoint already reads each marked user's mapping (for ``matched``);
    revoking the identities it finds there closes that gap."""
    user = new_user()
    held = api.token(user, body={"expiresInMinutes": 1440})
    assert held.status_code == 200, held.text
    admin = new_user(roles=("anonymous", "authenticated", "admin"))
    marked = api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": [user.app_user_id]})
    assert marked.status_code == 202 and marked.json()["matched"] == 1
    try:
        verdict = emulator.verify(held.json()["token"])
        assert not verdict["valid"], f"a deleted user's token still works until the sweep: {verdict}"
    finally:
        api.call("DELETE", "/api/identity", user)
        remove_tombstone(table, user.app_user_id)
