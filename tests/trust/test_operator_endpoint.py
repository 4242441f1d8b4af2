"""The operator endpoint, POST /api/manage/deleted-users: what it answers about the ids it got,
who may use it (an admin the access policy admits), and that the tokens of the users it marks stop
working at once."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Api, Emulator, User, expect_error, new_user
from tests.trust.conftest import principal

ADMIN = ("anonymous", "authenticated", "admin")


def remove_tombstone(table, app_user_id: str) -> None:
    """Delete a tombstone a test wrote, so no later sweep in this run finds it."""
    from shared.identity_store import table_key

    table.delete_entity("tombstones", table_key(app_user_id))


def test_the_operator_endpoint_reports_how_many_ids_matched_an_existing_user(api: Api):
    existing = new_user()
    assert api.token(existing).status_code == 200
    admin = new_user(("anonymous", "authenticated", "admin"))
    ids = [existing.app_user_id, new_user().app_user_id, existing.app_user_id]
    response = api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": ids})
    assert response.status_code == 202, response.text
    assert response.json() == {"marked": 2, "matched": 1}


def test_ids_of_every_shape_the_service_makes_are_accepted(api: Api, stack: dict):
    ids = ["github|abc", "aad|0f0e", f"{stack['oidcIssuer']}|sub-1", "entra:5b0c2e1d-3333-4c7a-8f9e-1a2b3c4d5e6f|6c2d6a9e-0f0e"]
    response = api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json={"appUserIds": ids})
    assert response.status_code == 202, response.text
    assert response.json() == {"marked": 4, "matched": 0}


# -- an operator is first someone the access policy admits ---------------------------------------

@pytest.fixture(scope="module")
def github_only_api(start_host) -> Api:
    api, _ = start_host({"ACCESS_ALLOWED_PROVIDERS": "github", "ACCESS_REQUIRED_ROLES": "member"}, "operator-policy")
    return api


def test_an_admin_the_access_policy_does_not_admit_marks_no_one_deleted(github_only_api: Api, table):
    victim = User(f"user-{uuid.uuid4().hex[:12]}", roles=("authenticated", "member"))
    assert github_only_api.token(victim).status_code == 200
    outsiders = {
        "ProviderNotAllowed": principal("twitter", f"op-{uuid.uuid4().hex}", ["authenticated", "admin", "member"]),
        "RoleRequired": User(f"op-{uuid.uuid4().hex[:12]}", roles=("authenticated", "admin")).headers,
    }
    try:
        for code, headers in outsiders.items():
            response = github_only_api.call("POST", "/api/manage/deleted-users", headers=headers,
                                            json={"appUserIds": [victim.app_user_id]})
            expect_error(response, 403, code)
        assert github_only_api.token(victim, fresh=True).status_code == 200, "a refused operator tombstoned the user"
        operator = User(f"op-{uuid.uuid4().hex[:12]}", roles=("authenticated", "admin", "member"))
        marked = github_only_api.call("POST", "/api/manage/deleted-users", operator, json={"appUserIds": [victim.app_user_id]})
        assert marked.status_code == 202 and marked.json() == {"marked": 1, "matched": 1}
        expect_error(github_only_api.token(victim, fresh=True), 403, "AccountDeleted")
    finally:
        github_only_api.call("DELETE", "/api/identity", victim)
        remove_tombstone(table, victim.app_user_id)


# -- marking users deleted revokes the tokens they hold ---------------------------------------------

def _holders(api: Api, count: int) -> dict[User, str]:
    held = {}
    for _ in range(count):
        user = new_user()
        response = api.token(user, body={"expiresInMinutes": 1440})
        assert response.status_code == 200, response.text
        held[user] = response.json()["token"]
    return held


def _forget(api: Api, table, users) -> None:
    for user in users:
        api.call("DELETE", "/api/identity", user)
        remove_tombstone(table, user.app_user_id)


def test_marking_many_users_deleted_revokes_every_token_they_hold(api: Api, emulator: Emulator, table):
    """More users than the endpoint revokes at once (16): every one is revoked within the request."""
    held = _holders(api, 40)
    revokes = emulator.calls("revokeAccessTokens")
    try:
        marked = api.call("POST", "/api/manage/deleted-users", new_user(ADMIN),
                          json={"appUserIds": [u.app_user_id for u in held] + [new_user().app_user_id]})
        assert marked.status_code == 202 and marked.json() == {"marked": 41, "matched": 40}
        assert emulator.calls("revokeAccessTokens") - revokes == 40, "one revocation per user who had an identity"
        still_valid = [u for u, token in held.items() if emulator.verify(token)["valid"]]
        assert not still_valid, f"{len(still_valid)} of 40 deleted users' tokens still work"
    finally:
        _forget(api, table, held)


def test_users_are_marked_deleted_even_when_acs_refuses_to_revoke_their_tokens(api: Api, emulator: Emulator, table):
    """The tombstones come first and stay: a revocation that fails is logged and left to the
    sweep, which deletes the identity (and so its tokens) anyway."""
    held = _holders(api, 3)
    emulator.fault(403, count=3, operations=["revokeAccessTokens"], retry_after=None)
    try:
        marked = api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json={"appUserIds": [u.app_user_id for u in held]})
        assert marked.status_code == 202 and marked.json() == {"marked": 3, "matched": 3}
    finally:
        emulator.clear_faults()
    try:
        for user in held:
            expect_error(api.token(user, fresh=True), 403, "AccountDeleted")
    finally:
        _forget(api, table, held)
