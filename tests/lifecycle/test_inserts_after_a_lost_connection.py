"""A guest's record and a new user's mapping are inserts (POSTs), which azure-core never re-sends
when their connection fails, and a pooled connection that Table Storage closed while idle fails
exactly so: under a flood of guests one such failure answered 503. The store re-sends each once
(a mapping insert refused then is read back: it may be our own first one).

What no local part can stand in for on demand: the connection failing for one request. A per-call
azure-core policy on the store's real TableClient raises the error azure-core raises for it
(ServiceRequestError) for the first insert only, before it is sent; everything else is Azurite."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from shared.errors import DependencyUnavailable
from shared.identity_store import IdentityStore
from shared.settings import load_settings
from tests.table_client_policy import store_with_policy

pytestmark = pytest.mark.asyncio


def _store(stack: dict, table: str, failures: int) -> tuple[IdentityStore, dict[str, int]]:
    from azure.core.exceptions import ServiceRequestError
    from azure.core.pipeline.policies import AsyncHTTPPolicy

    seen = {"inserts": 0}

    class LostConnection(AsyncHTTPPolicy):
        async def send(self, request: Any) -> Any:
            if request.http_request.method == "POST":
                seen["inserts"] += 1
                if seen["inserts"] <= failures:
                    raise ServiceRequestError("Server disconnected")
            return await self.next.send(request)

    settings = load_settings({"ACS_CONNECTION_STRING": stack["acsConnectionString"],
                              "TABLES_CONNECTION_STRING": stack["tablesConnectionString"], "IDENTITY_TABLE_NAME": table})
    return store_with_policy(settings, LostConnection()), seen


async def test_a_guest_record_whose_connection_was_lost_is_sent_again_and_written(stack: dict, own_table):
    name, table = own_table
    store, seen = _store(stack, name, failures=1)
    guest = f"8:acs:{uuid.uuid4()}"
    expires = datetime.now(timezone.utc) + timedelta(minutes=60)
    try:
        await store.record_guest(guest, expires)
    finally:
        await store.close()
    assert seen["inserts"] == 2
    row = table.get_entity("guests", guest)
    assert abs(row["ExpiresAt"] - expires) < timedelta(seconds=1)


async def test_a_guest_record_whose_connection_fails_twice_is_refused_as_unavailable(stack: dict, own_table):
    name, table = own_table
    store, seen = _store(stack, name, failures=2)
    guest = f"8:acs:{uuid.uuid4()}"
    try:
        with pytest.raises(DependencyUnavailable):
            await store.record_guest(guest, datetime.now(timezone.utc) + timedelta(minutes=60))
    finally:
        await store.close()
    assert seen["inserts"] == 2
    assert list(table.query_entities("PartitionKey eq 'guests'")) == []


async def test_a_mapping_insert_whose_connection_was_lost_is_sent_again_and_maps_the_user(stack: dict, own_table):
    name, table = own_table
    store, seen = _store(stack, name, failures=1)
    user, identity = f"github|resend-{uuid.uuid4().hex[:8]}", f"8:acs:{uuid.uuid4()}"
    try:
        assert await store.insert(user, identity) is True
        mapping = await store.get(user)
    finally:
        await store.close()
    assert seen["inserts"] == 2
    assert mapping is not None and mapping.communication_user_id == identity


async def test_a_mapping_insert_whose_connection_fails_twice_is_refused_as_unavailable(stack: dict, own_table):
    name, table = own_table
    store, seen = _store(stack, name, failures=2)
    user = f"github|resend-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(DependencyUnavailable):
            await store.insert(user, f"8:acs:{uuid.uuid4()}")
        assert await store.get(user) is None
    finally:
        await store.close()
    assert seen["inserts"] == 2
