"""A real sweep (the app's Sweeper against the stack's Azurite and ACS emulator, in this process)
moves the metrics of what its summary line reports beyond found/deleted: unmapped identities
deleted and kept for another resource, creates whose outcome nobody learnt and those that may
still finish, and tombstones skipped for a RowKey that is not the escaped user id. Telemetry
records into the OpenTelemetry SDK's in-memory reader (no Application Insights is involved)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from shared.acs_identity import AcsIdentityClient
from shared.cleanup import Sweeper
from shared.identity_store import IdentityStore
from shared.settings import load_settings
from tests.conftest import Emulator

from .conftest import Recorded

ITEMS = "acs_tokens.sweep.items"
COUNTS = ("found", "deleted", "mismatched", "unmapped_deleted", "unmapped_kept", "uncertain", "uncertain_pending")



async def test_a_sweep_counts_unmapped_identities_lost_creates_and_mismatched_tombstones(
    recorded: Recorded, stack: dict, emulator: Emulator, own_table: tuple[str, object]
) -> None:
    from azure.communication.identity import CommunicationIdentityClient

    name, table = own_table
    now = datetime.now(timezone.utc)
    ours = CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"]).create_user().properties["id"]
    anothers = f"8:acs:{uuid.uuid4()}_{uuid.uuid4()}"  # another resource's: ACS answers 401 IdentityNotOwned
    stale, pending = (str(uuid.uuid4()) for _ in range(2))
    rows = [
        {"PartitionKey": "unmapped", "RowKey": ours, "Reason": "mapping_failed", "CreatedAt": now},
        {"PartitionKey": "unmapped", "RowKey": anothers, "Reason": "not_owned", "CreatedAt": now},
        {"PartitionKey": "intents", "RowKey": stale, "CreatedAt": now - timedelta(minutes=11)},
        {"PartitionKey": "intents", "RowKey": pending, "CreatedAt": now},
        # The service keys this user "github|spaced%20id": a row keyed otherwise is mismatched.
        {"PartitionKey": "tombstones", "RowKey": "github|spaced id", "AppUserId": "github|spaced id", "MarkedAt": now},
    ]
    for row in rows:
        table.upsert_entity(row)

    settings = load_settings({"ACS_CONNECTION_STRING": stack["acsConnectionString"],
                              "TABLES_CONNECTION_STRING": stack["tablesConnectionString"], "IDENTITY_TABLE_NAME": name})
    store, acs = IdentityStore(settings), AcsIdentityClient(settings, retries=0)
    try:
        report = await Sweeper(settings, store, acs).run()
    finally:
        await store.close()
        await acs.close()

    moved = {result: recorded.value(ITEMS, result=result, dry_run=False) for result in COUNTS}
    assert moved == {"found": 1, "deleted": 0, "mismatched": 1, "unmapped_deleted": 1, "unmapped_kept": 1,
                     "uncertain": 1, "uncertain_pending": 1}, report.summary()
    assert moved == {result: getattr(report, result) for result in COUNTS}  # the summary line says the same
    assert recorded.value("acs_tokens.identities.deleted", reason="unmapped") == 1
    assert ours not in emulator.identities()
    left = {(e["PartitionKey"], e["RowKey"]) for e in table.query_entities("PartitionKey ne 'x'")}
    assert left == {("unmapped", anothers), ("intents", pending), ("tombstones", "github|spaced id")}
