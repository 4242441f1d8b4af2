"""Tombstones are retired in batch transactions, and a batch that fails because one of them
changed meanwhile still retires the others (Table Storage: the stack's Azurite)."""

from __future__ import annotations

import uuid

from shared.identity_store import IdentityStore
from shared.settings import load_settings


def _store(stack: dict) -> IdentityStore:
    settings = load_settings({"ACS_CONNECTION_STRING": stack["acsConnectionString"],
                              "TABLES_CONNECTION_STRING": stack["tablesConnectionString"]})
    return IdentityStore(settings)


async def _tombstones(store: IdentityStore, ids: set[str]) -> dict:
    found = {}
    async for page in store.tombstone_pages():
        found.update({t.app_user_id: t for t in page if t.app_user_id in ids})
    return found


async def test_retiring_a_batch_marks_and_removes_in_one_transaction(stack: dict):
    store = _store(stack)
    ids = {f"github|retire-{uuid.uuid4().hex[:8]}" for _ in range(3)}
    await store.mark_deleted(sorted(ids))
    first, second, third = (await _tombstones(store, ids)).values()
    operations = await store.retire_tombstones(swept=[first, second], removed=[third])
    after = await _tombstones(store, ids)
    assert operations == 1
    assert set(after) == {first.app_user_id, second.app_user_id}
    assert all(t.swept_at is not None for t in after.values())
    await store.close()


async def test_a_failed_batch_still_retires_the_tombstones_that_remain(stack: dict):
    store = _store(stack)
    ids = {f"github|retire-{uuid.uuid4().hex[:8]}" for _ in range(2)}
    await store.mark_deleted(sorted(ids))
    kept, vanished = (await _tombstones(store, ids)).values()
    await store.remove_tombstone(vanished)  # e.g. another sweep retired it meanwhile
    operations = await store.retire_tombstones(swept=[kept, vanished], removed=[])
    after = await _tombstones(store, ids)
    assert operations > 1  # the batch failed and was redone one by one
    assert set(after) == {kept.app_user_id} and after[kept.app_user_id].swept_at is not None
    await store.close()


async def test_rows_of_one_partition_go_in_one_batch_and_one_already_gone_does_not_keep_the_others(stack: dict):
    """Reported create intents (and deleted unmapped identities) leave 100 rows per request; a
    row another sweep removed meanwhile fails that batch, and the others still go one by one."""
    store = _store(stack)
    ids = [f"sweep-batch-{uuid.uuid4()}" for _ in range(3)]
    for request_id in ids:
        await store.record_intent(request_id)
    assert await store.remove_rows("remove_intents", "intents", ids[:2]) == (1, 0)
    await store.record_intent(ids[0])  # one back, one gone: the next batch cannot succeed whole
    assert await store.remove_rows("remove_intents", "intents", ids[:2] + ids[2:]) == (1 + 3, 0)
    remaining = set()
    async for page in store.intent_pages():
        remaining |= {intent.request_id for intent in page}
    assert not remaining & set(ids)
    await store.close()
