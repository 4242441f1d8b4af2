"""The bare side of P5: ``python -m bench.cold_bare APP_USER_ID`` in a fresh process does what
the service's first POST /api/token for a new user does, with the same SDKs, credential and
client configuration, and nothing else:

- the mapping and the tombstone point reads, concurrently (Table Storage, managed identity);
- createUserAndToken at ACS (managed identity);
- the mapping insert.

It reads the same settings the function app gets (ACS_ENDPOINT, TABLES_ENDPOINT,
IDENTITY_TABLE_NAME, DEPENDENCY_TIMEOUT_SECONDS from the environment) and prints one JSON line:
its probe marks and events (bench.probe), and the communicationUserId it created.
"""

from __future__ import annotations

import time

STARTED = time.time()

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

from . import probe  # noqa: E402

probe.install()
probe.mark("process_started", STARTED)
probe.mark("import_started")

from azure.communication.identity.aio import CommunicationIdentityClient  # noqa: E402
from azure.core.exceptions import ResourceNotFoundError  # noqa: E402
from azure.data.tables.aio import TableClient  # noqa: E402

from shared.credentials import new_credential  # noqa: E402  (the service's DefaultAzureCredential options)
from shared.retry import pipeline_options  # noqa: E402  (the service's client configuration)

probe.mark("import_finished")


async def first_token(app_user_id: str, keep_open: list[object] | None = None) -> str:
    """The work; its clients are closed afterwards, or left open in ``keep_open`` (the floor
    server closes them after its answer, as a server would not close them at all)."""
    options = pipeline_options(float(os.environ["DEPENDENCY_TIMEOUT_SECONDS"]))
    credential = new_credential()
    table = TableClient(endpoint=os.environ["TABLES_ENDPOINT"], table_name=os.environ.get("IDENTITY_TABLE_NAME", "acsidentities"),
                        credential=credential, **options)
    acs = CommunicationIdentityClient(os.environ["ACS_ENDPOINT"], credential, **options)
    probe.mark("work_started")

    async def absent(partition: str, row: str) -> bool:
        try:
            await table.get_entity(partition, row)
        except ResourceNotFoundError:
            return True
        return False

    mapping_absent, not_tombstoned = await asyncio.gather(absent(app_user_id, "identity"), absent("tombstones", app_user_id))
    if not (mapping_absent and not_tombstoned):
        raise SystemExit("the user already has a mapping or a tombstone")
    user, _token = await acs.create_user_and_token(["chat", "voip"], token_expires_in=timedelta(minutes=60))
    communication_user_id = user.properties["id"]
    now = datetime.now(timezone.utc)
    await table.create_entity({"PartitionKey": app_user_id, "RowKey": "identity", "AppUserId": app_user_id,
                               "CommunicationUserId": communication_user_id, "CreatedAt": now, "LastSeenAt": now})
    probe.mark("work_finished")
    if keep_open is not None:
        keep_open += [acs, table, credential]
    else:
        await acs.close()
        await table.close()
        await credential.close()
    return communication_user_id


def main() -> None:
    communication_user_id = asyncio.run(first_token(sys.argv[1]))
    print(json.dumps({"marks": probe.MARKS, "events": probe.EVENTS, "communicationUserId": communication_user_id}))


if __name__ == "__main__":
    main()
