"""Inactivity cleanup (CLEANUP_INACTIVE_DAYS) honours the dry run: it reports the idle users it
would delete and deletes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.conftest import Emulator


def _age(host, app_user_id: str, days: int) -> None:
    row = host.mappings()[app_user_id]
    row["LastSeenAt"] = datetime.now(timezone.utc) - timedelta(days=days)
    host.table.update_entity(row)


def test_inactivity_dry_run_counts_idle_users_and_deletes_nothing(sweep_host, emulator: Emulator):
    host = sweep_host("sweep-inactive-dry", CLEANUP_INACTIVE_DAYS="30", CLEANUP_DRY_RUN="true")
    (idle, idle_id), (active, active_id) = host.users_with_identities(2)
    _age(host, idle.app_user_id, 100)
    _age(host, active.app_user_id, 3)
    deletes = emulator.calls("deleteIdentity")
    summary = host.sweep()
    assert summary["dry_run"] and (summary["inactive"], summary["deleted"], summary["failed"]) == (1, 0, 0), summary
    assert emulator.calls("deleteIdentity") == deletes
    assert {idle_id, active_id} <= emulator.identities()
    assert set(host.mappings()) == {idle.app_user_id, active.app_user_id}


def test_inactive_users_are_counted_and_deleted(sweep_host, emulator: Emulator):
    host = sweep_host("sweep-inactive", CLEANUP_INACTIVE_DAYS="30")
    (idle, idle_id), (active, active_id) = host.users_with_identities(2)
    _age(host, idle.app_user_id, 100)
    deletes = emulator.calls("deleteIdentity")
    summary = host.sweep()
    assert (summary["inactive"], summary["deleted"], summary["failed"], summary["found"]) == (1, 1, 0, 1), summary
    assert emulator.calls("deleteIdentity") - deletes == 1
    assert idle_id not in emulator.identities() and active_id in emulator.identities()
    assert set(host.mappings()) == {active.app_user_id}
