"""README: "One ACS round trip on the warm path: the mapping is kept in process", and
TOKEN_REUSE_SECONDS hands a recent token out again only "to the same identity, scopes and
lifetime" ("0 = never"). Counted at the emulator (ACS calls) and at a proxy in front of Azurite
(table requests), not inferred from latency."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from tests.conftest import Api, Emulator, FunctionHost, new_user
from tests.lifecycle.conftest import a_later_last_seen_write_landed


def test_a_known_user_costs_one_acs_call_and_no_table_request_per_token(
    counted_tables, api: Api, emulator: Emulator, table
):
    counted, proxy = counted_tables
    user = new_user()
    before_first = len(proxy.seen)
    assert counted.token(user).status_code == 200
    assert len(proxy.seen) > before_first, "the first call reads and writes the table (the proxy sees traffic)"
    # The first call's last write, its create intent's removal, is made off the request's path:
    # wait until it is seen, so it is not taken for the warm path's.
    deadline = time.monotonic() + 30
    while not any(method == "DELETE" for method, _ in proxy.seen[before_first:]):
        assert time.monotonic() < deadline, "the first call's create intent was never removed"
        time.sleep(0.02)

    seen, calls, issues = len(proxy.seen), emulator.calls(), emulator.calls("issueAccessToken")
    fresh = [counted.token(user, fresh=True) for _ in range(5)]
    assert [r.status_code for r in fresh] == [200] * 5
    assert emulator.calls() - calls == 5 and emulator.calls("issueAccessToken") - issues == 5, \
        "each no-cache request of a known user is exactly one ACS call (an issue)"
    plain = [counted.token(user) for _ in range(5)]
    assert {r.json()["token"] for r in plain} == {fresh[-1].json()["token"]}, "plain requests get the recent token again"
    assert emulator.calls() - calls == 5, "and cost no ACS call"
    # Nor later, in the background: a last-seen write the instance begins after these requests
    # has landed, and the only table requests since are that other user's.
    sentinel = a_later_last_seen_write_landed(counted, api, table)
    assert [r for r in proxy.seen[seen:] if sentinel.app_user_id not in r[1]] == [], "the warm path reads and writes no table"
    assert any(method != "GET" for method, path in proxy.seen[seen:]), "the later write went through the counted proxy"


@pytest.fixture(scope="module")
def never_reuses(stack: dict) -> Iterator[Api]:
    host = FunctionHost(stack, {"TOKEN_REUSE_SECONDS": "0"}, "audit-no-reuse")
    yield Api(host.base, log=host.log)
    host.stop()


def test_token_reuse_seconds_zero_issues_a_new_token_for_every_request(never_reuses: Api, emulator: Emulator,
                                                                     identical_tokens: bool):
    user = new_user()
    first = never_reuses.token(user)
    assert first.status_code == 200, first.text
    issues = emulator.calls("issueAccessToken")
    again = [never_reuses.token(user) for _ in range(3)]
    assert [r.status_code for r in again] == [200] * 3
    assert emulator.calls("issueAccessToken") - issues == 3, "TOKEN_REUSE_SECONDS=0: every request is an ACS issue"
    if not identical_tokens:
        assert len({r.json()["token"] for r in again} | {first.json()["token"]}) == 4


def test_a_recent_token_is_never_handed_out_for_another_lifetime(api: Api, emulator: Emulator):
    user = new_user()
    hour = api.token(user, {"expiresInMinutes": 60}).json()
    issues = emulator.calls("issueAccessToken")
    day = api.token(user, {"expiresInMinutes": 1440})
    assert day.status_code == 200, day.text
    assert day.json()["token"] != hour["token"], "a token for another lifetime is not reused"
    assert emulator.calls("issueAccessToken") - issues == 1
    remaining = datetime.fromisoformat(emulator.verify(day.json()["token"])["expiresOn"].replace("Z", "+00:00")) \
        - datetime.now(timezone.utc)
    assert remaining > timedelta(hours=23), "the answer carries the lifetime asked for"
    assert api.token(user, {"expiresInMinutes": 60}).json()["token"] == hour["token"], "while the hour token is still reused"
