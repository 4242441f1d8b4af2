"""GET/DELETE /api/identity and POST /api/token/revoke: what a user sees of their identity."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from tests.conftest import CREATES, Api, Emulator, new_user

#: What real ACS answers issue, revoke and delete for a deleted identity is undocumented
#: (../ACS_FACTS.md: UNKNOWN; 404, 400 or 403, or 401 as for another resource's identity): each
#: test that meets a deleted identity runs under every answer, the emulator's
#: ``deletedIdentityAnswer`` knob.
DELETED_IDENTITY_ANSWERS = {
    "404 IdentityNotFound": "404",
    "400 ValidationError": "400",
    "403 IdentityNotFound": "403",
    "401 IdentityNotOwned": "401",
}


@pytest.fixture
def acs_answers_deleted_identities(emulator: Emulator) -> Iterator[Callable[[str], None]]:
    """Sets the emulator's answer for a deleted identity for one test; put back afterwards."""
    yield lambda answer: emulator.configure(deletedIdentityAnswer=answer)
    emulator.configure(deletedIdentityAnswer=None)


@pytest.fixture(params=sorted(DELETED_IDENTITY_ANSWERS))
def deleted_identity_answer(request: pytest.FixtureRequest, acs_answers_deleted_identities) -> str:
    answer = DELETED_IDENTITY_ANSWERS[request.param]
    acs_answers_deleted_identities(answer)
    return answer


def _delete_at_acs(stack: dict, communication_user_id: str) -> None:
    """Delete an identity outside the service (as in the portal or another tool)."""
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

    CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"]).delete_user(
        CommunicationUserIdentifier(communication_user_id)
    )


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


@pytest.mark.parametrize(
    "already_gone_answer",
    [None, *sorted(DELETED_IDENTITY_ANSWERS)],
    ids=["identity-at-acs", *(f"already-deleted-at-acs-{a}" for a in sorted(DELETED_IDENTITY_ANSWERS))],
)
def test_delete_removes_identity_tokens_and_mapping(
    any_api: Api, emulator: Emulator, stack: dict, table, acs_answers_deleted_identities, already_gone_answer: str | None
):
    """The identity goes at ACS (one delete counted) and the mapping goes; when the identity was
    already deleted at ACS, whatever ACS answers for it, the user's delete still succeeds.

    The token check reads the emulator's record (``reason`` "deleted": the identity the token
    names no longer exists), not when ACS starts refusing the token: ACS documents that a delete
    revokes the identity's tokens, and that revocation can take up to 15 minutes to propagate."""
    user = new_user()
    issued = any_api.token(user).json()
    if already_gone_answer is not None:
        acs_answers_deleted_identities(DELETED_IDENTITY_ANSWERS[already_gone_answer])
        _delete_at_acs(stack, issued["communicationUserId"])
    deletes = emulator.calls("deleteIdentity")
    assert any_api.call("DELETE", "/api/identity", user).status_code == 204
    assert emulator.calls("deleteIdentity") - deletes == 1
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


def test_identity_deleted_at_acs_is_repaired(api: Api, emulator: Emulator, stack: dict, table, deleted_identity_answer: str):
    """An identity deleted outside the service (e.g. in the portal): the next token request
    gets ACS's answer for a deleted identity (whichever it is), creates exactly one new identity
    and repoints the mapping."""
    user = new_user()
    old = api.token(user).json()["communicationUserId"]
    _delete_at_acs(stack, old)
    creates = emulator.calls(*CREATES)
    response = api.token(user, fresh=True)
    assert response.status_code == 200, response.text
    new = response.json()["communicationUserId"]
    assert new != old and new in emulator.identities()
    assert emulator.calls(*CREATES) - creates == 1
    assert emulator.verify(response.json()["token"])["valid"]
    [row] = list(table.query_entities("AppUserId eq @u", parameters={"u": user.app_user_id}))
    assert row["CommunicationUserId"] == new


def test_delete_through_one_instance_is_seen_at_once_by_another(
    api: Api, connection_string_api: Api, emulator: Emulator, deleted_identity_answer: str
):
    user = new_user()
    issued = api.token(user).json()
    assert connection_string_api.call("GET", "/api/identity", user).status_code == 200  # both instances know it
    assert connection_string_api.call("DELETE", "/api/identity", user).status_code == 204
    assert api.call("GET", "/api/identity", user).status_code == 404
    # The other instance's memory is corrected by ACS's answer for the deleted identity (or by
    # the table), whichever answer ACS gives.
    response = api.token(user, fresh=True)
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert fresh["communicationUserId"] != issued["communicationUserId"]
    assert fresh["communicationUserId"] in emulator.identities()
    assert emulator.verify(fresh["token"])["valid"]
