"""An identity that no longer exists, or belongs to another ACS resource, is repaired by the
user's next request and counted as gone by the sweep, whichever answer real ACS gives for it
(undocumented: each plausible variant is tried). ACS refusing the service itself (Denied) is
never taken for a missing identity: nothing is repaired, nothing is swept."""

from __future__ import annotations

import re
import uuid

import pytest
from tests.conftest import Api, Emulator, FunctionHost, new_user

from .conftest import ADMIN, control, mapping_row, run_cleanup, summary_after, tombstone_row

#: What a deleted identity may get from issue, revoke and delete (the emulator's knob).
VARIANTS = {
    "404 IdentityNotFound": "404",
    "400 ValidationError": "400",
    "403 IdentityNotFound": "403",
    "401 IdentityNotOwned": "401",
}


def _delete_at_acs(stack: dict, communication_user_id: str) -> None:
    """Delete an identity outside the service (as in the portal or another tool)."""
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

    CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"]).delete_user(
        CommunicationUserIdentifier(communication_user_id)
    )


def _sweep(sweeper: FunctionHost) -> dict[str, int]:
    """Run the sweep on ``sweeper`` and read the counts of its summary line."""
    lines = len(sweeper.log_text().splitlines())
    run_cleanup(sweeper.base)
    summary = summary_after(sweeper, lines)
    counts = dict(re.findall(r"\b([a-z_]+)=(\d+)\b", summary))
    return {name: int(value) for name, value in counts.items()}


@pytest.fixture(scope="module")
def sweeper(stack: dict):
    host = FunctionHost(stack, {}, "lifecycle-sweeper")
    yield host
    host.stop()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_deleted_identity_is_repaired_by_the_next_request_on_either_instance(
    api: Api, instance_b: Api, emulator: Emulator, stack: dict, table, acs_behaves, variant: str
):
    acs_behaves(deletedIdentityAnswer=VARIANTS[variant])
    warm, cold = new_user(), new_user()
    old_warm = api.token(warm).json()["communicationUserId"]  # A remembers it: the warm path
    old_cold = api.token(cold).json()["communicationUserId"]  # B has never seen it: the cold path
    _delete_at_acs(stack, old_warm)
    _delete_at_acs(stack, old_cold)

    for instance, user, old in ((api, warm, old_warm), (instance_b, cold, old_cold)):
        response = instance.token(user, fresh=True)
        assert response.status_code == 200, response.text
        new = response.json()["communicationUserId"]
        assert new != old and new in emulator.identities()
        assert mapping_row(table, user)["CommunicationUserId"] == new
        assert emulator.verify(response.json()["token"])["valid"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_sweep_counts_a_deleted_identity_as_gone_and_finishes(
    api: Api, emulator: Emulator, stack: dict, table, sweeper: FunctionHost, acs_behaves, variant: str
):
    acs_behaves(deletedIdentityAnswer=VARIANTS[variant])
    _sweep(sweeper)  # what earlier tests marked is swept now, so this run counts only the two below
    gone, live = new_user(), new_user()
    gone_id = api.token(gone).json()["communicationUserId"]
    live_id = api.token(live).json()["communicationUserId"]
    _delete_at_acs(stack, gone_id)
    marked = api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json={"appUserIds": [gone.app_user_id, live.app_user_id]})
    assert marked.status_code == 202, marked.text

    counts = _sweep(sweeper)
    assert {k: counts[k] for k in ("deleted", "already_gone", "failed", "left")} == {
        "deleted": 1, "already_gone": 1, "failed": 0, "left": 0,
    }, counts
    assert mapping_row(table, gone) is None and mapping_row(table, live) is None
    assert tombstone_row(table, gone)["SweptAt"] and tombstone_row(table, live)["SweptAt"]
    assert live_id not in emulator.identities()


@pytest.mark.parametrize("status", [401, 403])
def test_acs_refusing_the_service_is_not_taken_for_a_gone_identity(
    api: Api, emulator: Emulator, table, status: int
):
    user = new_user()
    first = api.token(user).json()["communicationUserId"]
    identities = emulator.identities()
    control(emulator, "POST", "faults", json={"status": status, "code": "Denied", "count": 1, "operations": ["issueAccessToken"], "retryAfterSeconds": None})
    refused = api.token(user, fresh=True)
    assert refused.status_code == 503 and "Retry-After" in refused.headers
    assert emulator.identities() == identities, "no identity is created for a refusal"
    assert mapping_row(table, user)["CommunicationUserId"] == first, "the mapping is not repaired"
    again = api.token(user, fresh=True)
    assert again.status_code == 200 and again.json()["communicationUserId"] == first


def test_sweep_keeps_mapping_and_tombstone_when_acs_denies_the_delete(
    api: Api, emulator: Emulator, table, sweeper: FunctionHost
):
    user = new_user()
    identity = api.token(user).json()["communicationUserId"]
    api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json={"appUserIds": [user.app_user_id]})
    control(emulator, "POST", "faults", json={"status": 403, "code": "Denied", "count": 50, "operations": ["deleteIdentity"], "retryAfterSeconds": None})
    try:
        lines = len(sweeper.log_text().splitlines())
        run_cleanup(sweeper.base)
        summary = summary_after(sweeper, lines)
    finally:
        emulator.clear_faults()
    assert " failed=0 " not in summary
    assert identity in emulator.identities()
    assert mapping_row(table, user)["CommunicationUserId"] == identity
    assert not tombstone_row(table, user).get("SweptAt"), "a tombstone is retired only after its mapping is gone"


def test_a_replaced_acs_resource_gives_every_user_a_new_identity_on_their_next_call(
    api: Api, instance_b: Api, emulator: Emulator, table, stack: dict
):
    users = [new_user() for _ in range(3)]
    old = {u.app_user_id: api.token(u).json()["communicationUserId"] for u in users}
    instance_b.token(users[0])  # B remembers one of them too
    new_resource = str(uuid.uuid4())
    control(emulator, "PUT", "resource", json={"resourceId": new_resource})
    try:
        calls = emulator.calls()
        for index, user in enumerate(users):
            response = (instance_b if index == 0 else api).token(user, fresh=True)
            assert response.status_code == 200, response.text
            new = response.json()["communicationUserId"]
            assert new.startswith(f"8:acs:{new_resource}_") and new != old[user.app_user_id]
            assert mapping_row(table, user)["CommunicationUserId"] == new
        # Per user: the issue that meets the foreign identity, a create; nothing loops.
        assert emulator.calls() - calls <= 3 * len(users)
        again = api.token(users[1], fresh=True)
        assert again.json()["communicationUserId"].startswith(f"8:acs:{new_resource}_")
        for user in users:  # the new resource's identities go with their users
            assert api.call("DELETE", "/api/identity", user).status_code == 204
    finally:
        control(emulator, "PUT", "resource", json={"resourceId": None})
        # The old resource's identities would go with the old resource; here they are deleted so
        # that later tests' "every live identity is mapped" checks start clean.
        for identity in old.values():
            _delete_at_acs(stack, identity)


def test_get_identity_and_revoke_after_the_identity_vanished(api: Api, stack: dict, emulator: Emulator, acs_behaves):
    """Revoke of an identity ACS no longer has is 204 (its tokens are dead anyway)."""
    acs_behaves(deletedIdentityAnswer="400")
    user = new_user()
    identity = api.token(user).json()["communicationUserId"]
    _delete_at_acs(stack, identity)
    assert api.call("POST", "/api/token/revoke", user).status_code == 204
    assert api.call("DELETE", "/api/identity", user).status_code == 204
    assert api.call("GET", "/api/identity", user).status_code == 404
