"""An anonymous flood cannot spend the ACS resource: 5,000 guest requests from 50 client
addresses against a host with small budgets (5 per client and 20 in total per minute) get 200 or
429 GuestBudgetExceeded with Retry-After and nothing else (0 answers >= 500), and ACS is asked to
create no more identities than the budgets allow in the time the flood took (counted at the
emulator). Every identity made is recorded, and the sweep removes them afterwards."""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest
import requests

from tests.conftest import CREATES, Emulator, FunctionHost
from tests.guest.conftest import GUEST_PATH, GuestHost, age_guests, guest_rows, remember

PER_CLIENT, TOTAL = 5, 20
REQUESTS, CLIENTS, WORKERS = 5_000, 50, 24


@pytest.fixture(scope="module")
def small_budgets(stack: dict) -> Iterator[GuestHost]:
    host = FunctionHost(stack, {"GUEST_ACCESS_ENABLED": "true", "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE": str(PER_CLIENT),
                                "GUEST_REQUESTS_PER_MINUTE": str(TOTAL)}, "guests-budget")
    yield GuestHost(host)
    host.stop()


def _bound(per_minute: int, seconds: float) -> int:
    """The most a token bucket of ``per_minute`` (a full bucket at the start) lets through in
    ``seconds``."""
    return per_minute + int(per_minute * seconds / 60) + 1


def test_a_flood_of_5000_guest_requests_stays_within_the_budgets(small_budgets: GuestHost, emulator: Emulator, table):
    clients = [f"198.51.{n // 250}.{n % 250 + 1}" for n in range(CLIENTS)]
    local = __import__("threading").local()

    def send(index: int) -> tuple[str, int, str | None, str | None, str | None]:
        session = getattr(local, "session", None) or setattr(local, "session", requests.Session()) or local.session
        client = clients[index % CLIENTS]
        response = remember(session.post(f"{small_budgets.api.base}{GUEST_PATH}", json={"displayName": f"Flood {index}"},
                                         headers={"X-Forwarded-For": f"{client}:{random.randrange(1024, 65535)}"}, timeout=60))
        body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
        code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
        return client, response.status_code, response.headers.get("Retry-After"), code, body.get("communicationUserId")

    creates_before, rows_before, live_before = emulator.calls(*CREATES), set(guest_rows(table)), emulator.identities()
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        answers = list(pool.map(send, range(REQUESTS)))
    seconds = time.monotonic() - started
    creates = emulator.calls(*CREATES) - creates_before
    made_at_acs = emulator.identities() - live_before

    statuses = Counter(status for _, status, _, _, _ in answers)
    assert not [s for s in statuses if s >= 500], statuses
    assert set(statuses) <= {200, 429}, statuses
    refused = [a for a in answers if a[1] == 429]
    assert all(code == "GuestBudgetExceeded" and retry and int(retry) >= 1 for _, _, retry, code, _ in refused)
    granted = [a for a in answers if a[1] == 200]
    assert granted, "the budget lets some guests in"
    made = {identity for *_, identity in granted}
    assert creates == len(granted) == len(made), "one ACS create per guest let in, none for a refused one"
    assert made_at_acs == made, "the identities ACS made are exactly those handed to the guests let in"
    # The total bucket starts full (a host of this module's own), so the first TOTAL guests from
    # 50 fresh addresses are all let in; beyond that only its refill over the flood's duration.
    assert TOTAL <= creates <= _bound(TOTAL, seconds), \
        f"ACS was asked for {creates} identities in {seconds:.1f} s; the budgets allow {TOTAL} to {_bound(TOTAL, seconds)}"
    per_client = Counter(client for client, *_ in granted)
    assert max(per_client.values()) <= _bound(PER_CLIENT, seconds), per_client
    assert made <= set(guest_rows(table)) - rows_before, "every guest let in was recorded"
    print(f"\nguest flood: {REQUESTS} requests in {seconds:.1f} s, {len(granted)} let in, {len(refused)} refused, "
          f"{creates} ACS creates (bound {_bound(TOTAL, seconds)})")

    age_guests(table, made)
    small_budgets.sweep()
    assert not made & emulator.identities() and not made & set(guest_rows(table)), "and the sweep removes them all"


def test_one_client_is_held_to_its_own_budget_and_others_are_not_affected(guests: GuestHost, emulator: Emulator):
    from tests.conftest import expect_error
    from tests.guest.conftest import ask, new_client

    client = new_client()
    started = time.monotonic()
    answers = [ask(guests.api, "Eager", client=client) for _ in range(3 * PER_CLIENT)]
    seconds = time.monotonic() - started
    granted = [a for a in answers if a.status_code == 200]
    assert PER_CLIENT <= len(granted) <= _bound(PER_CLIENT, seconds), [a.status_code for a in answers]
    for refused in (a for a in answers if a.status_code != 200):
        expect_error(refused, 429, "GuestBudgetExceeded")
    assert ask(guests.api, "Someone Else", client=new_client()).status_code == 200
