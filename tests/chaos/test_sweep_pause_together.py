"""When ACS answers one of the sweep's deletes with 429 and Retry-After, every worker waits, not
just the one told (README, "Cleanup of deleted users"). ACS paces the resource, not the worker
that happened to ask: workers that kept deleting through the pause would only be throttled in
turn, or push the resource further past its limit.

Judged from the emulator's call log (``GET /_emulator/calls``): when each delete arrived and was
answered, on one monotonic clock shared by every process of the machine (Linux CLOCK_MONOTONIC,
which Python's ``time.monotonic`` reads), so the sweeper's pause and the emulator's times compare.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import requests

from tests.chaos.conftest import ADMIN, run_sweep
from tests.conftest import Emulator, new_user

WORKERS = 4
USERS = 32
#: ACS lets this many deletes through, then throttles the next one (a pause in mid-run, while
#: every worker is busy).
THROTTLED_AFTER = 8
RETRY_AFTER_SECONDS = 3
#: Each ACS call takes this long, so the workers' deletes overlap at ACS as they do in Azure.
LATENCY_MS = 40


def recorded_deletes(acs: Emulator, identities: set[str]) -> list[dict[str, Any]]:
    response = requests.get(f"{acs.base}/_emulator/calls", params={"operation": "deleteIdentity"},
                            verify=acs.ca, timeout=30)
    response.raise_for_status()
    return sorted((c for c in response.json()["calls"] if c["identity"] in identities), key=lambda c: c["arrivedMs"])


def most_in_flight_at_once(calls: list[dict[str, Any]]) -> int:
    """The largest number of these calls ACS was answering at the same moment."""
    events = sorted([(c["arrivedMs"], 1) for c in calls] + [(c["answeredMs"], -1) for c in calls])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


def test_one_throttled_delete_pauses_every_sweep_worker_until_its_retry_after(chaos_host, acs: Emulator):
    sweeper = chaos_host("sweep-pause-together", {"CLEANUP_CONCURRENCY": str(WORKERS),
                                                  "IDENTITY_TABLE_NAME": f"chaos{uuid.uuid4().hex[:12]}"})
    users = [new_user() for _ in range(USERS)]
    identities = {sweeper.api.token(user).json()["communicationUserId"] for user in users}
    assert len(identities) == USERS
    marked = sweeper.api.call("POST", "/api/manage/deleted-users", new_user(ADMIN),
                              json={"appUserIds": [user.app_user_id for user in users]})
    assert marked.status_code == 202, marked.text

    acs.configure(latencyMs=LATENCY_MS)
    throttle = requests.post(f"{acs.base}/_emulator/faults", verify=acs.ca, timeout=30, json={
        "status": 429, "count": 1, "retryAfterSeconds": RETRY_AFTER_SECONDS,
        "operations": ["deleteIdentity"], "after": THROTTLED_AFTER,
    })
    assert throttle.status_code == 201, throttle.text

    summary = run_sweep(sweeper.host, seconds=90)

    # The sweep finished: every tombstoned user's identity deleted, nothing failed or left over.
    for count, value in (("found", USERS), ("deleted", USERS), ("already_gone", 0), ("failed", 0), ("left", 0)):
        assert re.search(rf" {count}={value} ", summary), f"expected {count}={value}: {summary}"
    assert not identities & acs.identities(), "identities of tombstoned users are still live at ACS"

    deletes = recorded_deletes(acs, identities)
    throttled = [c for c in deletes if c["status"] == 429]
    assert len(throttled) == 1, f"ACS was to throttle exactly one delete: {throttled}"
    told = throttled[0]
    assert [c["status"] for c in deletes].count(204) == USERS, deletes
    before = [c for c in deletes if c["arrivedMs"] < told["arrivedMs"]]
    assert most_in_flight_at_once(before) >= 2, "the workers never deleted side by side: no pause to share"

    pause_ends = told["answeredMs"] + RETRY_AFTER_SECONDS * 1000
    during = [c for c in deletes if told["answeredMs"] < c["arrivedMs"] < pause_ends]
    # Allowed in the pause: a delete another worker had already begun when ACS answered 429 (its
    # user read, its request on the way), at most one per other worker. A worker still taking
    # users would send one delete after another through the pause.
    assert len(during) <= WORKERS - 1, (
        f"{len(during)} deletes reached ACS in the {RETRY_AFTER_SECONDS} s it asked the sweep to wait, "
        f"more than the {WORKERS - 1} other workers could have had under way: workers kept deleting "
        f"while one waited ({[round(c['arrivedMs'] - told['answeredMs']) for c in during]} ms after the 429)")
    assert len({c["identity"] for c in during}) == len(during)
    assert told["identity"] not in {c["identity"] for c in during}, "the told worker retried inside the pause"
    retry = next(c for c in deletes if c["identity"] == told["identity"] and c["arrivedMs"] > told["arrivedMs"])
    assert retry["arrivedMs"] >= pause_ends and retry["status"] == 204, (retry, pause_ends)
