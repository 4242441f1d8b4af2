"""A revoke made through one instance holds on every instance: none hands out a token issued
before the revoke later than REVOCATION_CHECK_SECONDS after it was answered (the instance that
revoked: never), warm or cold, with or without Cache-Control: no-cache.

"Issued before the revoke" is the emulator's verdict ``revoked`` (the token's issue time is not
after the identity's revocation), which holds whatever the propagation delay: real ACS may keep
accepting a revoked token for up to 15 minutes, so the tests never rely on ACS refusing it. Each
test runs under plausible real behaviours of ACS (REAL_ACS_BEHAVIOURS), including identical
tokens for identical issues within one second, where an issue right after a revoke could hand
back a token from before it.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import Api, Emulator, new_user

from .conftest import REAL_ACS_BEHAVIOURS, REVOCATION_BOUND_SECONDS


def _issued_before_revoke(emulator: Emulator, response) -> bool:
    assert response.status_code == 200, response.text
    return emulator.verify(response.json()["token"])["revoked"]


@pytest.mark.parametrize("behaviour", sorted(REAL_ACS_BEHAVIOURS))
def test_revoke_through_a_is_honoured_by_a_at_once_and_by_b_within_the_bound(
    api: Api, instance_b: Api, emulator: Emulator, acs_behaves, behaviour: str
):
    acs_behaves(**REAL_ACS_BEHAVIOURS[behaviour])
    user = new_user()
    api.token(user)
    held_by_b = instance_b.token(user).json()  # B now remembers the identity and this token
    assert instance_b.token(user).json()["token"] == held_by_b["token"], "B hands out its recent token again"

    assert api.call("POST", "/api/token/revoke", user).status_code == 204
    assert emulator.verify(held_by_b["token"])["revoked"], "B's token was issued before the revoke"

    # The instance that revoked never hands out an earlier token, plain or no-cache.
    assert not _issued_before_revoke(emulator, api.token(user))
    assert not _issued_before_revoke(emulator, api.token(user, fresh=True))

    # B, asked for a new token (no-cache), issues one after the revoke (more than a second after
    # it by now: A waited for the next second before issuing again).
    assert not _issued_before_revoke(emulator, instance_b.token(user, fresh=True))

    # Past the bound, B's plain (reusing) path gives no token from before the revoke either.
    time.sleep(REVOCATION_BOUND_SECONDS + 0.5)
    for _ in range(3):
        assert not _issued_before_revoke(emulator, instance_b.token(user))


@pytest.mark.parametrize("behaviour", sorted(REAL_ACS_BEHAVIOURS))
def test_b_never_reuses_a_pre_revoke_token_even_when_asked_only_plainly(
    api: Api, instance_b: Api, emulator: Emulator, acs_behaves, behaviour: str
):
    """B is asked only plainly (no no-cache) after the revoke: the first answer past the bound
    is already a token from after the revoke, so the bound holds on the reuse path alone."""
    acs_behaves(**REAL_ACS_BEHAVIOURS[behaviour])
    user = new_user()
    held_by_b = instance_b.token(user).json()
    assert api.call("POST", "/api/token/revoke", user).status_code == 204
    answered = time.monotonic()
    time.sleep(REVOCATION_BOUND_SECONDS + 0.5 - (time.monotonic() - answered))
    response = instance_b.token(user)
    assert response.json()["communicationUserId"] == held_by_b["communicationUserId"]
    assert not _issued_before_revoke(emulator, response)


def test_b_whose_identity_memory_lapsed_gives_no_pre_revoke_token_with_or_without_no_cache(
    api: Api, instance_b: Api, emulator: Emulator, acs_behaves
):
    """The cold path: B's memory of the user's identity (60 s from its first call) has lapsed
    while a token it issued later is still kept for reuse (TOKEN_REUSE_SECONDS, 60 s). Under
    same-second identical tokens and a 15-minute revocation, as real ACS may behave."""
    acs_behaves(**REAL_ACS_BEHAVIOURS["15-minute revocation, same-second identical tokens"])
    user = new_user()
    instance_b.token(user)
    resolved = time.monotonic()
    time.sleep(30)
    kept = instance_b.token(user, fresh=True).json()  # B keeps this one for reuse until ~90 s
    assert api.call("POST", "/api/token/revoke", user).status_code == 204
    assert emulator.verify(kept["token"])["revoked"]
    time.sleep(max(0.0, 61 - (time.monotonic() - resolved)))  # B's identity memory has lapsed
    plain = instance_b.token(user)
    assert plain.json()["token"] != kept["token"]
    assert not _issued_before_revoke(emulator, plain)
    assert not _issued_before_revoke(emulator, instance_b.token(user, fresh=True))


def test_revocation_is_recorded_on_the_mapping_row_and_as_a_row_every_instance_polls(api: Api, table):
    user = new_user()
    identity = api.token(user).json()["communicationUserId"]
    before = time.time()
    assert api.call("POST", "/api/token/revoke", user).status_code == 204
    [row] = list(table.query_entities("AppUserId eq @u and RowKey eq 'identity'", parameters={"u": user.app_user_id}))
    assert row["RevokedAt"].timestamp() >= before - 1
    events = list(table.query_entities("PartitionKey eq 'revocations' and CommunicationUserId eq @c", parameters={"c": identity}))
    assert [e["RevokedAt"] for e in events] == [row["RevokedAt"]]


def test_a_delete_through_a_stops_b_reusing_the_deleted_identitys_token_within_the_bound(
    api: Api, instance_b: Api, emulator: Emulator
):
    user = new_user()
    held_by_b = instance_b.token(user).json()
    assert api.call("DELETE", "/api/identity", user).status_code == 204
    time.sleep(REVOCATION_BOUND_SECONDS + 0.5)
    response = instance_b.token(user)
    assert response.status_code == 200, response.text
    assert response.json()["token"] != held_by_b["token"]
    assert response.json()["communicationUserId"] != held_by_b["communicationUserId"]
    assert emulator.verify(response.json()["token"])["valid"]


def test_no_cache_gives_a_newly_issued_token_on_the_cold_path_too(api: Api, instance_b: Api, emulator: Emulator):
    """A no-cache request on an instance that has not resolved the user yet still costs an issue
    at ACS (one call), rather than handing back a token that instance issued a moment ago."""
    user = new_user()
    instance_b.token(user)
    issues = emulator.calls("issueAccessToken")
    assert api.token(user, fresh=True).status_code == 200  # A: cold for this user
    assert emulator.calls("issueAccessToken") - issues == 1
    assert instance_b.token(user, fresh=True).status_code == 200  # B: warm
    assert emulator.calls("issueAccessToken") - issues == 2
