"""GET/DELETE /api/identity and POST /api/token/revoke: what a user sees of their identity."""

from __future__ import annotations

from tests.conftest import Api, Emulator, new_user


def test_identity_is_404_before_the_first_token(any_api: Api):
    response = any_api.call("GET", "/api/identity", new_user())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "IdentityNotFound"


def test_identity_shows_the_mapped_acs_user_without_a_token(any_api: Api):
    user = new_user()
    issued = any_api.token(user).json()
    response = any_api.call("GET", "/api/identity", user)
    assert response.status_code == 200
    assert response.json() == {"appUserId": user.app_user_id, "communicationUserId": issued["communicationUserId"]}


def test_revoke_revokes_old_tokens_and_the_next_token_is_issued_after_it(any_api: Api, emulator: Emulator):
    """``revoked`` is the emulator's verdict that a token was issued before the revocation,
    whatever the propagation delay (real ACS: up to 15 minutes before it refuses the token)."""
    user = new_user()
    old = any_api.token(user).json()
    assert any_api.call("POST", "/api/token/revoke", user).status_code == 204
    assert emulator.verify(old["token"])["revoked"]
    new = any_api.token(user).json()
    assert new["communicationUserId"] == old["communicationUserId"]
    assert not emulator.verify(new["token"])["revoked"]


def test_revoked_token_is_refused_at_once_when_acs_enforces_at_once_emulator_only(api: Api, emulator: Emulator):
    user = new_user()
    old = api.token(user).json()
    assert api.call("POST", "/api/token/revoke", user).status_code == 204
    verdict = emulator.verify(old["token"])
    assert not verdict["valid"] and verdict["reason"] == "revoked"
    assert emulator.verify(api.token(user).json()["token"])["valid"]


def test_revoke_without_identity_is_204(api: Api):
    assert api.call("POST", "/api/token/revoke", new_user()).status_code == 204


def test_delete_removes_identity_tokens_and_mapping(any_api: Api, emulator: Emulator, table):
    user = new_user()
    issued = any_api.token(user).json()
    assert any_api.call("DELETE", "/api/identity", user).status_code == 204
    assert issued["communicationUserId"] not in emulator.identities()
    assert emulator.verify(issued["token"])["reason"] == "deleted"
    assert any_api.call("GET", "/api/identity", user).status_code == 404
    rows = list(table.query_entities("AppUserId eq @u", parameters={"u": user.app_user_id}))
    assert rows == []


def test_delete_without_identity_is_204(api: Api):
    assert api.call("DELETE", "/api/identity", new_user()).status_code == 204


def test_after_delete_the_next_token_gets_a_new_identity(api: Api, emulator: Emulator):
    user = new_user()
    first = api.token(user).json()["communicationUserId"]
    api.call("DELETE", "/api/identity", user)
    second = api.token(user).json()["communicationUserId"]
    assert second != first and second in emulator.identities()


def test_identity_deleted_at_acs_is_repaired(api: Api, emulator: Emulator, stack: dict, table):
    """An identity deleted outside the service (e.g. in the portal): the next token request
    gets ACS's 404, creates a new identity and repoints the mapping."""
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

    user = new_user()
    old = api.token(user).json()["communicationUserId"]
    CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"]).delete_user(
        CommunicationUserIdentifier(old)
    )
    response = api.token(user, fresh=True)
    assert response.status_code == 200, response.text
    new = response.json()["communicationUserId"]
    assert new != old and new in emulator.identities()
    [row] = list(table.query_entities("AppUserId eq @u", parameters={"u": user.app_user_id}))
    assert row["CommunicationUserId"] == new


def test_delete_through_one_instance_is_seen_at_once_by_another(api: Api, connection_string_api: Api, emulator: Emulator):
    user = new_user()
    issued = api.token(user).json()
    assert connection_string_api.call("GET", "/api/identity", user).status_code == 200  # both instances know it
    assert connection_string_api.call("DELETE", "/api/identity", user).status_code == 204
    assert api.call("GET", "/api/identity", user).status_code == 404
    fresh = api.token(user, fresh=True).json()  # the other instance's memory is corrected by ACS's 404
    assert fresh["communicationUserId"] != issued["communicationUserId"]
    assert emulator.verify(fresh["token"])["valid"]
