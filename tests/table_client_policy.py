"""The app's identity store with one more azure-core policy in its Table client's pipeline: how
a test makes Table Storage fail in a way no local part can on demand (a connection lost for one
request, a batch whose answer is lost, a throttled batch), with everything else the real Azurite.
"""

from __future__ import annotations

from typing import Any

from shared.identity_store import IdentityStore
from shared.retry import pipeline_options


def store_with_policy(settings: Any, policy: Any) -> IdentityStore:
    """An IdentityStore for ``settings`` (a connection string's) whose client is the app's own,
    with the same pipeline options, plus ``policy`` on every call."""
    from azure.data.tables.aio import TableClient

    store = IdentityStore(settings)
    store._client = TableClient.from_connection_string(
        settings.tables_connection_string, table_name=settings.identity_table, per_call_policies=[policy],
        **pipeline_options(settings.dependency_timeout_seconds, dependency="tables"))
    return store
