"""The sweep at sizes past the table's limits: more than 100 ids in one mark (a batch
transaction holds at most 100) and more than 1,000 tombstones (a query page holds at most 1,000)."""

from __future__ import annotations

import uuid

from tests.conftest import Emulator


def test_marking_more_than_100_ids_records_every_unique_one(sweep_host):
    host = sweep_host("sweep-mark-many")
    ids = [f"github|many-{uuid.uuid4().hex[:10]}" for _ in range(230)]
    response = host.mark(ids + ids[:20])  # duplicates count once
    assert response.status_code == 202 and response.json() == {"marked": 230, "matched": 0}
    assert response.headers["Cache-Control"] == "no-store"
    tombstones = host.tombstones()
    assert set(tombstones) == set(ids)
    assert all(t.get("MarkedAt") is not None and t.get("SweptAt") is None for t in tombstones.values())


def test_sweep_reads_every_page_past_1000_tombstones(sweep_host, emulator: Emulator):
    host = sweep_host("sweep-pages", CLEANUP_TOMBSTONE_RETENTION_HOURS="0")
    doomed = host.users_with_identities(2)
    nobody = [f"github|page-{uuid.uuid4().hex[:10]}" for _ in range(1100)]
    for start in range(0, len(nobody), 500):  # 500 ids of this length fit the 16 KiB body limit
        assert host.mark(nobody[start:start + 500]).status_code == 202
    host.mark([u.app_user_id for u, _ in doomed])
    deletes = emulator.calls("deleteIdentity")
    summary = host.sweep()
    assert (summary["found"], summary["deleted"], summary["already_gone"], summary["failed"], summary["left"]) == (1102, 2, 1100, 0, 0)
    assert emulator.calls("deleteIdentity") - deletes == 2
    assert host.tombstones() == {}, "every tombstone, on every page, was retired"
    assert not {cid for _, cid in doomed} & emulator.identities()
