"""The sweep's batch removals (shared/identity_store.py ``remove_rows``: reported create intents and
deleted unmapped identities leave 100 rows per Table batch transaction) with a dependency broken
mid-sweep. The app's Sweeper runs in this process against the stack's Azurite and ACS emulator,
on a table of the test's own, so every count is this test's rows.

What no local part can stand in for: a Table batch failing on demand. The FaultProxy works on TCP
under TLS and cannot tell a batch from a listing, and Azurite has no fault knobs. So a per-call
azure-core policy (``BatchFault``) on the store's real TableClient fails the first ``$batch`` call
only: either before it is sent (a 5xx/timeout after azure-core's retries, nothing committed) or
after Azurite answered it (a connection reset mid-response: the batch committed, the sweep cannot
know). Every other request is real, and outcomes are judged by rows in Azurite and identities at
the emulator.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
import requests

from shared.acs_identity import AcsIdentityClient
from shared.cleanup import Sweeper
from shared.identity_store import IdentityStore
from shared.settings import load_settings
from tests.conftest import Emulator
from tests.table_client_policy import store_with_policy

ROWS = 150  # two batches: 100 and 50



@pytest.fixture
def acs_unthrottled(acs: Emulator) -> Iterator[Emulator]:
    """ACS's 500 deletes per 30 s would throttle 150-row sweeps run back to back: lifted here
    (throttling is not what these tests break), restored after."""
    acs.configure(limits={"deleteIdentity": 100000, "createIdentity": 100000})
    yield acs
    acs.configure(limits=None)


def _settings(stack: dict, table: str) -> Any:
    return load_settings({"ACS_CONNECTION_STRING": stack["acsConnectionString"],
                          "TABLES_CONNECTION_STRING": stack["tablesConnectionString"], "IDENTITY_TABLE_NAME": table})


class BatchFault:
    """Fails the first Table ``$batch`` call, once per call (azure-core's retries included):
    ``commit=False`` never sends it; ``commit=True`` lets Azurite apply it, then loses the answer."""

    def __init__(self, commit: bool, before: Any = None) -> None:
        from azure.core.pipeline.policies import AsyncHTTPPolicy

        fault = self

        class Policy(AsyncHTTPPolicy):
            async def send(self, request: Any) -> Any:
                http = request.http_request
                if http.method == "POST" and "$batch" in http.url and fault.failed == 0:
                    fault.failed += 1
                    if fault.before is not None:  # something else happens first, then the batch goes
                        fault.before()
                        return await self.next.send(request)
                    if fault.commit:
                        await self.next.send(request)
                    from azure.core.exceptions import ServiceResponseError
                    raise ServiceResponseError("connection reset by peer")
                return await self.next.send(request)

        self.commit = commit
        self.before = before
        self.failed = 0
        self.policy = Policy()


async def _sweep(settings: Any, policy: Any = None) -> Any:
    """One run of the sweep with a store and an ACS client of its own; ``policy`` (a fault)
    sits in the store's Table client pipeline when given."""
    store = IdentityStore(settings) if policy is None else store_with_policy(settings, policy)
    acs = AcsIdentityClient(settings, retries=0)
    try:
        return await Sweeper(settings, store, acs).run()
    finally:
        await acs.close()
        await store.close()


def _unmapped_identities(stack: dict, table: Any, count: int) -> set[str]:
    """Identities live at ACS whose only record is an ``unmapped`` row (a repair's leftovers)."""
    from azure.communication.identity import CommunicationIdentityClient

    client = CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"])
    made = {client.create_user().properties["id"] for _ in range(count)}
    now = datetime.now(timezone.utc)
    for identity in made:
        table.upsert_entity({"PartitionKey": "unmapped", "RowKey": identity, "Reason": "mapping_failed", "CreatedAt": now})
    return made


def _rows(table: Any, partition: str) -> set[str]:
    return {e["RowKey"] for e in table.query_entities(f"PartitionKey eq '{partition}'")}


@pytest.mark.parametrize("commit", [False, True], ids=["batch_never_applied", "batch_applied_answer_lost"])
async def test_an_unmapped_batch_lost_to_a_table_failure_does_not_stop_the_next_batch_and_is_counted(
    stack: dict, emulator: Emulator, acs_unthrottled: Emulator, own_table: tuple[str, Any], commit: bool
) -> None:
    """150 deleted unmapped identities leave in two batches; the first batch's request fails (a
    5xx or timeout past the retries, or a reset after Azurite applied it). The second batch must
    still go, and the run must count what it could not finish (failed/left), not report success."""
    name, table = own_table
    identities = _unmapped_identities(stack, table, ROWS)
    settings = _settings(stack, name)
    fault = BatchFault(commit)
    report = await _sweep(settings, fault.policy)
    assert fault.failed == 1
    assert not identities & emulator.identities(), "every identity was deleted at ACS before its row went"
    left = _rows(table, "unmapped")
    first_batch = 0 if commit else 100
    assert len(left) == first_batch, (
        f"{len(left)} rows left: the failed batch ended the whole unmapped sweep, so the next batch "
        f"was never sent ({report.summary()})")
    assert report.failed + report.left >= 1, f"a batch that failed is counted: {report.summary()}"


async def test_unmapped_rows_a_failed_batch_left_are_removed_by_the_next_run_without_orphans(
    stack: dict, emulator: Emulator, acs_unthrottled: Emulator, own_table: tuple[str, Any]
) -> None:
    """Whatever the first run failed to remove, the next run finds again: ACS answers gone for
    those identities and their rows go. Nothing is left at ACS, nothing recorded twice."""
    name, table = own_table
    identities = _unmapped_identities(stack, table, ROWS)
    settings = _settings(stack, name)
    await _sweep(settings, BatchFault(commit=False).policy)
    assert _rows(table, "unmapped"), "the failure left rows for the next run"
    assert not identities & emulator.identities()
    deletes = emulator.calls("deleteIdentity")
    second = await _sweep(settings)
    assert _rows(table, "unmapped") == set(), second.summary()
    assert second.failed == 0 and second.left == 0, second.summary()
    assert emulator.calls("deleteIdentity") - deletes == second.unmapped_deleted > 0


async def test_an_unmapped_row_stays_while_acs_fails_its_delete_and_goes_on_the_next_run(
    stack: dict, acs: Emulator, acs_unthrottled: Emulator, own_table: tuple[str, Any]
) -> None:
    """ACS failing between the listing and the row removal: only identities ACS confirmed deleted
    lose their rows (in the batch); those it answered 503 keep theirs, are counted ``failed``,
    and are still live at ACS, so the next run finds them."""
    name, table = own_table
    identities = _unmapped_identities(stack, table, 5)
    settings = _settings(stack, name)
    requests.post(f"{acs.base}/_emulator/faults", verify=acs.ca, timeout=30,
                  json={"status": 503, "count": 2, "after": 2, "operations": ["deleteIdentity"]}).raise_for_status()
    report = await _sweep(settings)
    acs.clear_faults()
    live = identities & acs.identities()
    assert len(live) == 2 and report.failed == 2 and report.unmapped_deleted == 3, report.summary()
    assert _rows(table, "unmapped") == live, "a row goes only once its identity is deleted at ACS"
    second = await _sweep(settings)
    assert not identities & acs.identities() and _rows(table, "unmapped") == set(), second.summary()


async def test_two_sweeps_over_the_same_unmapped_rows_at_once_remove_them_all_without_failing(
    stack: dict, emulator: Emulator, acs_unthrottled: Emulator, own_table: tuple[str, Any]
) -> None:
    """Two instances run the timer at once: each deletes at ACS (one of them meets gone), and the
    second batch meets rows the first removed. That batch fails whole and falls back to single
    deletes, a missing row counting as done: no exception, every row and identity gone."""
    name, table = own_table
    identities = _unmapped_identities(stack, table, ROWS)
    settings = _settings(stack, name)
    reports = await asyncio.gather(_sweep(settings), _sweep(settings))
    assert not identities & emulator.identities()
    assert _rows(table, "unmapped") == set()
    assert all(r.failed == 0 and r.left == 0 for r in reports), [r.summary() for r in reports]
    assert sum(r.unmapped_deleted for r in reports) >= ROWS
    # The later sweep's batch met rows the other had removed and fell back to single deletes (one
    # table operation per row): the path a missing row takes, shown taken.
    assert max(r.table_operations for r in reports) > 100, [r.table_operations for r in reports]


@pytest.mark.parametrize("commit", [False, True], ids=["batch_never_applied", "batch_applied_answer_lost"])
async def test_a_failed_batch_of_reported_create_intents_does_not_stop_the_next_batch(
    stack: dict, acs_unthrottled: Emulator, own_table: tuple[str, Any], commit: bool
) -> None:
    """150 stale create intents are reported and leave in two batches; the first batch fails.
    The second must still go (else those intents are reported again next run, and the failure
    reaches no count)."""
    name, table = own_table
    old = datetime.now(timezone.utc) - timedelta(minutes=30)
    ids = {str(uuid.uuid4()) for _ in range(ROWS)}
    for request_id in ids:
        table.upsert_entity({"PartitionKey": "intents", "RowKey": request_id, "CreatedAt": old})
    settings = _settings(stack, name)
    fault = BatchFault(commit)
    report = await _sweep(settings, fault.policy)
    assert fault.failed == 1 and report.uncertain == ROWS, report.summary()
    left = _rows(table, "intents")
    assert len(left) == (0 if commit else 100), (
        f"{len(left)} intents left: the failed batch ended the intent sweep ({report.summary()})")


async def test_a_batch_meeting_its_table_deleted_mid_sweep_recreates_it_and_the_sweep_finishes(
    stack: dict, emulator: Emulator, acs_unthrottled: Emulator, own_table: tuple[str, Any]
) -> None:
    """The table disappears between the listing and the first batch (a 404 TableNotFound for
    the batch): the store creates it and the sweep goes on; nothing escapes the run, and every
    identity listed is deleted at ACS."""
    from azure.data.tables import TableServiceClient

    name, table = own_table
    identities = _unmapped_identities(stack, table, ROWS)
    settings = _settings(stack, name)
    service = TableServiceClient.from_connection_string(stack["tablesConnectionString"])
    fault = BatchFault(commit=False, before=lambda: service.delete_table(name))
    report = await _sweep(settings, fault.policy)
    assert fault.failed == 1
    assert not identities & emulator.identities()
    assert report.unmapped_deleted == ROWS and report.failed == 0, report.summary()
    assert name in {t.name for t in service.list_tables()}, "the batch recreated the table"
    assert _rows(table, "unmapped") == set()


async def test_a_batch_answered_server_busy_is_not_redone_as_a_hundred_single_deletes(
    stack: dict, acs_unthrottled: Emulator, own_table: tuple[str, Any]
) -> None:
    """Table Storage throttling a batch answers 202 with a 503 ``ServerBusy`` part, which the SDK
    raises as TableTransactionError, the same type as a row already gone. The sweep must not
    answer a busy service with 100 single deletes (each as likely throttled); the rows are the
    next run's. Here the SDK's decoding of that part is stood in for (Azurite never throttles):
    the policy raises what the SDK raises, status 503 and all."""
    from azure.core.pipeline.policies import AsyncHTTPPolicy
    from azure.data.tables import TableTransactionError

    name, table = own_table
    old = datetime.now(timezone.utc) - timedelta(minutes=30)
    for _ in range(ROWS):
        table.upsert_entity({"PartitionKey": "intents", "RowKey": str(uuid.uuid4()), "CreatedAt": old})
    seen = {"batches": 0, "deletes": 0}

    class Busy(AsyncHTTPPolicy):
        async def send(self, request: Any) -> Any:
            http = request.http_request
            if http.method == "POST" and "$batch" in http.url:
                seen["batches"] += 1
                error = TableTransactionError(message="ServerBusy: The server is busy.")
                error.status_code, error.error_code = 503, "ServerBusy"
                raise error
            if http.method == "DELETE":
                seen["deletes"] += 1
            return await self.next.send(request)

    report = await _sweep(_settings(stack, name), Busy())
    assert seen["batches"] == 2, report.summary()
    assert seen["deletes"] == 0, (
        f"{seen['deletes']} single deletes sent to a service that answered the batch ServerBusy ({report.summary()})")
