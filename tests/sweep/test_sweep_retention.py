"""Swept tombstones keep refusing the deleted user for CLEANUP_TOMBSTONE_RETENTION_HOURS, then
go; after that the same sign-in is a new user with a new identity. With a retention of 0 they go
in the same run that deleted the identity."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.conftest import Emulator, expect_error


def _age_swept(host, app_user_id: str, hours: float) -> None:
    """Pretend the tombstone was swept ``hours`` ago (what time passing would have done)."""
    row = host.tombstones()[app_user_id]
    row["SweptAt"] = datetime.now(timezone.utc) - timedelta(hours=hours)
    host.table.update_entity(row)


def test_tombstone_expires_after_its_retention_and_the_user_starts_afresh(sweep_host, emulator: Emulator):
    host = sweep_host("sweep-retention", CLEANUP_TOMBSTONE_RETENTION_HOURS="24")
    (expired, expired_id), (recent, recent_id) = host.users_with_identities(2)
    host.mark([expired.app_user_id, recent.app_user_id])
    assert host.sweep()["deleted"] == 2
    _age_swept(host, expired.app_user_id, 24.5)
    _age_swept(host, recent.app_user_id, 23.5)

    summary = host.sweep()
    assert (summary["found"], summary["deleted"], summary["retained"], summary["failed"]) == (2, 0, 2, 0)
    assert set(host.tombstones()) == {recent.app_user_id}, "only the tombstone past its retention goes"

    expect_error(host.api.token(recent, fresh=True), 403, "AccountDeleted")
    again = host.api.token(expired)
    assert again.status_code == 200, again.text
    assert again.json()["communicationUserId"] not in (expired_id, recent_id)
    assert again.json()["communicationUserId"] in emulator.identities()


def test_retention_zero_removes_the_tombstone_in_the_run_that_deleted_the_identity(sweep_host, emulator: Emulator):
    host = sweep_host("sweep-retention-0", CLEANUP_TOMBSTONE_RETENTION_HOURS="0")
    doomed = host.users_with_identities(3)
    host.mark([u.app_user_id for u, _ in doomed])
    summary = host.sweep()
    assert (summary["found"], summary["deleted"], summary["failed"], summary["left"]) == (3, 3, 0, 0)
    assert host.tombstones() == {}, "retention 0: no tombstone is kept"
    assert host.mappings() == {}
    assert not {cid for _, cid in doomed} & emulator.identities()
    user, old_id = doomed[0]
    response = host.api.token(user)
    assert response.status_code == 200 and response.json()["communicationUserId"] != old_id
