"""A sweep whose ACS deletes go unanswered (a one-way partition: connections open, requests
swallowed) ends at its time budget with every unfinished user counted as left or failed, and
finishes them on the next run once ACS answers: no mapping is dropped for an identity that was
not deleted, and no tombstone is retired while its mapping exists."""

from __future__ import annotations

import re
import uuid

from azure.data.tables import TableServiceClient

from tests.chaos.conftest import ADMIN, run_sweep
from tests.conftest import Emulator, new_user


def test_a_sweep_whose_deletes_go_unanswered_stops_at_its_budget_and_the_next_run_finishes(
    chaos_host, acs: Emulator, stack: dict
):
    table_name = f"chaos{uuid.uuid4().hex[:12]}"
    # Each swallowed delete lasts at least the 3 s dependency timeout, so with two at a time the
    # third pair could only start past the 5 s budget: a sweep that keeps to it leaves users over.
    sweeper = chaos_host("sweep-silent-acs", {"CLEANUP_TIME_BUDGET_SECONDS": "5", "DEPENDENCY_TIMEOUT_SECONDS": "3",
                                              "REQUEST_DEADLINE_SECONDS": "15", "CLEANUP_CONCURRENCY": "2",
                                              "IDENTITY_TABLE_NAME": table_name}, acs=True)
    users = [new_user() for _ in range(6)]
    identities = {u.app_user_id: sweeper.api.token(u).json()["communicationUserId"] for u in users}
    marked = sweeper.api.call("POST", "/api/manage/deleted-users", new_user(ADMIN),
                              json={"appUserIds": [u.app_user_id for u in users]})
    assert marked.status_code == 202
    deletes_before = acs.calls("deleteIdentity")

    sweeper.acs.drop_requests()
    summary = run_sweep(sweeper.host, seconds=60)
    sweeper.acs.cut()  # ACS answers again
    found, deleted, left, failed = (int(re.search(rf" {name}=(\d+)", summary).group(1))
                                    for name in ("found", "deleted", "left", "failed"))
    assert acs.calls("deleteIdentity") == deletes_before, "no delete reached ACS"
    assert found == 6 and deleted == 0 and left + failed == 6, summary
    assert left > 0, f"the budget ended the run with users left for the next one: {summary}"
    assert set(identities.values()) <= acs.identities(), "nothing was deleted while ACS was silent"
    table = TableServiceClient.from_connection_string(stack["tablesConnectionString"]).get_table_client(table_name)
    mapped = {e["CommunicationUserId"] for e in table.query_entities("RowKey eq 'identity'")}
    assert mapped == set(identities.values()), "every mapping is kept for the next run"
    assert not [e for e in table.query_entities("PartitionKey eq 'tombstones'") if e.get("SweptAt")], \
        "no tombstone is retired while its mapping exists"

    again = run_sweep(sweeper.host, seconds=60)
    assert re.search(r" found=6 deleted=6 already_gone=0 retained=0 failed=0 left=0 ", again), again
    assert not set(identities.values()) & acs.identities()
    assert not list(table.query_entities("RowKey eq 'identity'"))
