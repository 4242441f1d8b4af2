"""Repairing a mapping whose identity ACS no longer has (deleted, or another resource's) must cost
one new identity and must never drop the only record of an identity that still exists.

- README: "A replaced ACS resource makes every mapping name a foreign identity: each user gets a
  new one on their next call (at most two issues and one create each; nothing loops)."
- The repair overwrites the mapping: if the "foreign" identity still exists in the resource the
  service was pointed at before (a setting or slot swapped by mistake, then put back), nothing
  records it any more, and ACS cannot list identities.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import requests
from azure.data.tables import UpdateMode

from tests.chaos.conftest import creates, delete_at_acs, run_sweep, unrecorded
from tests.conftest import Api, Emulator, new_user
from tests.lifecycle.conftest import mapping_row


def _use_resource(emulator: Emulator, resource_id: str | None) -> None:
    response = requests.put(f"{emulator.base}/_emulator/resource", json={"resourceId": resource_id},
                            verify=emulator.ca, timeout=30)
    response.raise_for_status()


def test_a_user_back_after_two_days_to_a_replaced_resource_costs_one_create_and_no_throwaway_identity(
    chaos_host, api: Api, acs: Emulator, table, stack: dict
):
    user = new_user()
    old = api.token(user).json()["communicationUserId"]
    row = mapping_row(table, user)
    # Their last visit was two days ago (their row's last-seen is refreshed on this visit).
    table.update_entity({"PartitionKey": row["PartitionKey"], "RowKey": "identity",
                         "LastSeenAt": datetime.now(timezone.utc) - timedelta(days=2)}, mode=UpdateMode.MERGE)
    instance = chaos_host("repair-after-two-days")  # an instance that does not remember the user
    new_resource = str(uuid.uuid4())
    _use_resource(acs, new_resource)
    acs.configure(latencyMs=200)  # an ordinary ACS round trip; the table write is faster
    made_before, deletes_before, issues_before = creates(acs), acs.calls("deleteIdentity"), acs.calls("issueAccessToken")
    try:
        response = instance.api.token(user)
        assert response.status_code == 200, response.text
        assert response.json()["communicationUserId"].startswith(f"8:acs:{new_resource}_")
        made, deleted = creates(acs) - made_before, acs.calls("deleteIdentity") - deletes_before
        issued = acs.calls("issueAccessToken") - issues_before
        assert (made, deleted) == (1, 0) and issued <= 2, (
            f"the repair made {made} identities and deleted {deleted} ({issued} issues): the mapping's "
            "last-seen refresh, started before ACS answered, changed the row under the repair's conditional "
            "replace, so its new identity was thrown away and another made"
        )
    finally:
        instance.api.call("DELETE", "/api/identity", user)
        _use_resource(acs, None)
        delete_at_acs(stack, {old})


def test_pointing_at_another_acs_resource_for_a_while_orphans_no_identity_of_the_original(
    chaos_host, acs: Emulator, table, stack: dict
):
    instance = chaos_host("resource-swap")
    user = new_user()
    original = instance.api.token(user).json()["communicationUserId"]
    other = str(uuid.uuid4())
    made: set[str] = {original}
    try:
        _use_resource(acs, other)  # ACS_ENDPOINT pointed at another resource, by mistake
        during = instance.api.token(user, fresh=True)
        assert during.status_code == 200, during.text
        made.add(during.json()["communicationUserId"])
        _use_resource(acs, None)  # the setting is put back
        after = instance.api.token(user, fresh=True)
        assert after.status_code == 200, after.text
        made.add(after.json()["communicationUserId"])
        run_sweep(instance.host)  # the sweep gets its chance to finish what the repairs left
        lost = {original} & unrecorded(acs, table)
        assert not lost, (
            "the user's original identity still exists in the original resource, but the repair overwrote its "
            "mapping while the service was pointed elsewhere: it is recorded nowhere and can never be deleted"
        )
    finally:
        instance.api.call("DELETE", "/api/identity", user)
        _use_resource(acs, other)
        delete_at_acs(stack, made)
        _use_resource(acs, None)
        delete_at_acs(stack, made)
        for identity in made:  # their unmapped rows too: other tests' sweeps count ACS deletes
            table.delete_entity("unmapped", identity)


def test_the_sweep_keeps_trying_another_resources_identity_for_30_days_then_lets_it_go(
    chaos_host, acs: Emulator, table, stack: dict
):
    """An unmapped identity ACS answers IdentityNotOwned for is kept for the next run (it may be
    deleted once the setting is put back), one attempt per run, and let go after 30 days."""
    instance = chaos_host("unmapped-retention")
    other = str(uuid.uuid4())
    _use_resource(acs, other)
    made: set[str] = set()
    try:
        recent, old = (instance.api.token(new_user()).json()["communicationUserId"] for _ in range(2))
        made |= {recent, old}
        _use_resource(acs, None)  # the service's own resource again: both are another's
        now = datetime.now(timezone.utc)
        for identity, created in ((recent, now), (old, now - timedelta(days=31))):
            table.upsert_entity({"PartitionKey": "unmapped", "RowKey": identity, "Reason": "not_owned", "CreatedAt": created})
        deletes = acs.calls("deleteIdentity")
        summary = run_sweep(instance.host)
        rows = {e["RowKey"] for e in table.query_entities("PartitionKey eq 'unmapped'")}
        assert recent in rows and old not in rows, summary
        assert acs.calls("deleteIdentity") - deletes >= 2 and re.search(r"unmapped_kept=[1-9]", summary), summary
        assert {recent, old} <= _identities_in(acs, other), "neither was deleted: they are another resource's"
    finally:
        _use_resource(acs, other)
        delete_at_acs(stack, made)
        _use_resource(acs, None)
        for identity in made:
            table.delete_entity("unmapped", identity)


def _identities_in(emulator: Emulator, resource_id: str) -> set[str]:
    _use_resource(emulator, resource_id)
    try:
        return emulator.identities()
    finally:
        _use_resource(emulator, None)
