"""Two function host instances sharing one Azurite and one ACS emulator: the stack's own host (A)
and a second one started here with the same settings (B), as two instances of the app in Azure.

The emulator's knobs for what real ACS does or may do (revocation propagation delay, the answer
for a deleted identity, identical tokens within one second) are set per test and put back after.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest
import requests

from tests.conftest import Api, Emulator, FunctionHost, User, new_user

ADMIN = ("anonymous", "authenticated", "admin")

#: The bound the service states: REVOCATION_CHECK_SECONDS, at its default.
REVOCATION_BOUND_SECONDS = 5.0

#: Plausible real behaviours of ACS the service must be right under, as emulator knobs.
REAL_ACS_BEHAVIOURS = {
    "immediate revocation, unique tokens": {"revocationDelaySeconds": 0, "identicalTokensWithinSecond": False},
    "15-minute revocation, same-second identical tokens": {
        "revocationDelaySeconds": 900, "identicalTokensWithinSecond": True,
    },
}


@pytest.fixture(scope="session")
def instance_b(stack: dict) -> Iterator[Api]:
    """A second instance of the app with the same settings as the stack's host."""
    host = FunctionHost(stack, {}, "lifecycle-b")
    yield Api(host.base)
    host.stop()


def control(emulator: Emulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    response = requests.request(method, f"{emulator.base}/_emulator/{path}", verify=emulator.ca, timeout=30, **kwargs)
    response.raise_for_status()
    return response


def run_cleanup(base: str) -> None:
    """Run the timer function now, as Azure Functions runs any non-HTTP function by hand."""
    response = requests.post(f"{base}/admin/functions/cleanup_deleted_users", json={"input": ""}, timeout=30)
    assert response.status_code == 202


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def mapping_row(table, user: User) -> dict | None:
    rows = list(table.query_entities("AppUserId eq @u and RowKey eq 'identity'", parameters={"u": user.app_user_id}))
    return rows[0] if rows else None


def tombstone_row(table, user: User) -> dict | None:
    rows = list(table.query_entities("PartitionKey eq 'tombstones' and AppUserId eq @u", parameters={"u": user.app_user_id}))
    return rows[0] if rows else None


def summary_after(host: FunctionHost, lines_before: int, seconds: float = 60) -> str:
    """The sweep summary line a host logged after ``lines_before`` lines of its log."""
    def found() -> str | None:
        lines = host.log_text().splitlines()[lines_before:]
        return next((line for line in lines if "cleanup found=" in line or "cleanup dry run found=" in line), None)

    wait_for(lambda: found() is not None, "the sweep's summary line", seconds)
    return found() or ""


def a_later_last_seen_write_landed(api: Api, other: Api, table) -> User:
    """Wait for an event, not a time: a last-seen write that ``api`` starts now, in the
    background like any other, is seen in the table. A user made through ``other`` (so ``api``
    reads their row cold) whose row says they were last seen two days ago asks ``api`` for a
    token; once that user's LastSeenAt is today, a background write begun before it (however
    late it lands, as long as it is not later than a write begun after it) has landed too.
    Returns that user, whose own requests a caller counting table traffic leaves out."""
    sentinel = new_user()
    assert other.token(sentinel).status_code == 200
    row = mapping_row(table, sentinel)
    row.update(LastSeenAt=datetime.now(timezone.utc) - timedelta(days=2), LastSeenKept=True)
    table.update_entity(row, mode="replace")
    assert api.token(sentinel).status_code == 200
    today = datetime.now(timezone.utc) - timedelta(minutes=5)
    wait_for(lambda: mapping_row(table, sentinel)["LastSeenAt"] > today, "a later last-seen write to land")
    return sentinel
