"""The cleanup sweep's throughput: 10,000 deleted users (tombstones, each with a mapping and a
live ACS identity), swept once with the app's own Sweeper and settings, against the emulator's
deleteIdentity limit (500 per 30 s) scaled by a factor so the run fits in a minute.

Figures: the achieved delete rate as a fraction of the (scaled) limit, and Table Storage
operations per deleted user. Because the rate is not a ratio of two sides measured together, the
run also says what bounded it: CPU per deleted user of the sweeper, Azurite and the ACS emulator
(all on this machine), and how busy the machine's cores were meanwhile (other work included). The data is written straight to the table with the documented
schema (shared/identity_store.py), the identities are made through the SDK.

Much of Azurite's share is Azurite's own: it looks an entity up by RowKey first, then PartitionKey
(azurite 3.37 dist/src/table/persistence/LokiTableMetadataStore.js,
queryTableEntitiesWithPartitionAndRowKey and deleteTableEntity), and every mapping's RowKey is
"identity", so each point read and delete of a mapping scans every mapping row. Its CPU per
deleted user grows with the users in the table; Azure's point read is by both keys. The run reports Azurite's CPU per
point read of a mapping and of a tombstone (unique RowKeys) before the sweep, to show it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import psutil

from .measure import sdk_session
from .stack import Emulator, calls, process_listening_on, settings_env

DELETE_LIMIT_PER_WINDOW = 500
WINDOW_SECONDS = 30.0
SETUP_CONCURRENCY = 64
SETUP_LIMIT_SCALE = 100


async def _create_identities(endpoint: str, count: int) -> list[str]:
    ids: list[str] = []
    numbers = itertools.count()
    async with sdk_session(endpoint) as client:
        async def worker() -> None:
            while next(numbers) < count:
                user = await client.create_user()
                ids.append(user.properties["id"])

        await asyncio.gather(*(worker() for _ in range(SETUP_CONCURRENCY)))
    return ids


async def _write_rows(connection_string: str, table_name: str, app_user_ids: list[str], identities: list[str]) -> None:
    """Mappings (one partition per user: written one by one) and tombstones (one partition:
    batch transactions of 100), exactly as the service and an app backend write them."""
    from azure.core.exceptions import ResourceExistsError
    from azure.data.tables.aio import TableClient

    from shared.identity_store import MAPPING_ROW, TOMBSTONE_PARTITION, table_key

    now = datetime.now(timezone.utc)
    async with TableClient.from_connection_string(connection_string, table_name=table_name) as table:
        try:
            await table.create_table()
        except ResourceExistsError:
            pass
        rows = iter(zip(app_user_ids, identities))

        async def writer() -> None:
            for app_user_id, identity in rows:
                await table.upsert_entity({
                    "PartitionKey": table_key(app_user_id), "RowKey": MAPPING_ROW, "AppUserId": app_user_id,
                    "CommunicationUserId": identity, "CreatedAt": now, "LastSeenAt": now,
                })

        await asyncio.gather(*(writer() for _ in range(SETUP_CONCURRENCY)))
        for start in range(0, len(app_user_ids), 100):
            await table.submit_transaction([
                ("upsert", {"PartitionKey": TOMBSTONE_PARTITION, "RowKey": table_key(u), "AppUserId": u, "MarkedAt": now})
                for u in app_user_ids[start:start + 100]
            ])


POINT_READS = 300


async def _azurite_cpu_per_read(connection_string: str, table_name: str, keys: list[tuple[str, str]],
                                azurite: psutil.Process) -> float:
    """Azurite's CPU (ms) per point read of these (PartitionKey, RowKey) entities, read one at a time."""
    from azure.data.tables.aio import TableClient

    async with TableClient.from_connection_string(connection_string, table_name=table_name) as table:
        await table.get_entity(*keys[0])  # the connection is made before the count starts
        before = _cpu(azurite)
        for partition_key, row_key in keys:
            await table.get_entity(partition_key, row_key)
        return (_cpu(azurite) - before) / len(keys) * 1000


async def run(stack: dict[str, Any], emulator: Emulator, users: int, limit_scale: float) -> dict[str, Any]:
    from shared.acs_identity import AcsIdentityClient
    from shared.cleanup import Sweeper
    from shared.credentials import get_credential
    from shared.identity_store import MAPPING_ROW, TOMBSTONE_PARTITION, IdentityStore, table_key
    from shared.settings import load_settings

    settings = load_settings(settings_env(stack))
    setup_started = time.perf_counter()
    await emulator.configure(limitScale=SETUP_LIMIT_SCALE)
    identities = await _create_identities(stack["acsEndpoint"], users)
    app_user_ids = [f"github|bench-swept-{i}-{identity[-12:]}" for i, identity in enumerate(identities)]
    await _write_rows(stack["tablesConnectionString"], settings.identity_table, app_user_ids, identities)
    setup_seconds = time.perf_counter() - setup_started

    await emulator.configure(limitScale=limit_scale)  # fresh windows at the scaled limit
    store = IdentityStore(settings)
    acs = AcsIdentityClient(settings, retries=0)  # as the timer function builds it
    sweeper = Sweeper(settings, store, acs)
    # Each 429 is logged by the app; the run reports how many there were instead.
    logging.getLogger("shared").setLevel(logging.ERROR)
    before = await emulator.stats()
    others = {name: process_listening_on(urlsplit(stack[endpoint]).port)
              for name, endpoint in (("azurite", "tablesEndpoint"), ("emulator", "acsEndpoint"))}
    sample = [table_key(u) for u in app_user_ids[:: max(1, len(app_user_ids) // POINT_READS)][:POINT_READS]]
    mapping_read_ms = await _azurite_cpu_per_read(stack["tablesConnectionString"], settings.identity_table,
                                                  [(key, MAPPING_ROW) for key in sample], others["azurite"])
    tombstone_read_ms = await _azurite_cpu_per_read(stack["tablesConnectionString"], settings.identity_table,
                                                    [(TOMBSTONE_PARTITION, key) for key in sample], others["azurite"])
    others_cpu = {name: _cpu(process) for name, process in others.items()}
    machine = psutil.cpu_times()
    cpu = time.process_time()
    try:
        report = await sweeper.run()
    finally:
        await store.close()
        await acs.close()
        await get_credential().close()
    sweep_cpu = time.process_time() - cpu
    others_cpu = {name: _cpu(process) - others_cpu[name] for name, process in others.items()}
    machine_busy = _busy(psutil.cpu_times()) - _busy(machine)
    after = await emulator.stats()
    left = len(set(identities) & await emulator.identities())

    limit_per_second = DELETE_LIMIT_PER_WINDOW * limit_scale / WINDOW_SECONDS
    deleted = report.deleted
    rate = deleted / report.seconds if report.seconds else 0.0
    return {
        "users": users,
        "setup_seconds": round(setup_seconds, 1),
        "limit_scale": limit_scale,
        "delete_limit_per_second": round(limit_per_second, 1),
        "sweep_seconds": round(report.seconds, 1),
        "deleted": deleted,
        "failed": report.failed,
        "left_for_next_run": report.left,
        "identities_still_live": left,
        "achieved_deletes_per_second": round(rate, 1),
        "fraction_of_limit": round(rate / limit_per_second, 3),
        "acs_delete_calls": calls(before, after, "deleteIdentity"),
        "acs_throttled": after["throttledTotal"] - before["throttledTotal"],
        "table_operations": report.table_operations,
        "table_operations_per_deleted_user": round(report.table_operations / deleted, 3) if deleted else None,
        "sweeper_cpu_ms_per_deleted_user": round(sweep_cpu / deleted * 1000, 3) if deleted else None,
        "azurite_cpu_ms_per_deleted_user": round(others_cpu["azurite"] / deleted * 1000, 3) if deleted else None,
        "emulator_cpu_ms_per_deleted_user": round(others_cpu["emulator"] / deleted * 1000, 3) if deleted else None,
        # Before the sweep, with every mapping in the table: a mapping's point read against a
        # tombstone's (see the module docstring for why they differ).
        "azurite_cpu_ms_per_mapping_read": round(mapping_read_ms, 3),
        "azurite_cpu_ms_per_tombstone_read": round(tombstone_read_ms, 3),
        "machine_cores": psutil.cpu_count() or 1,
        "machine_cores_busy": round(machine_busy / report.seconds, 2) if report.seconds else None,
        "concurrency": settings.cleanup_concurrency,
    }


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _busy(times: Any) -> float:
    """CPU seconds the whole machine spent on anything (every process, every core)."""
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)
