"""Deleted app users lose their ACS identities: the admin endpoint records tombstones and the
timer function cleanup_deleted_users (run by hand, as Azure Functions runs non-HTTP functions)
deletes identity, mapping and then retires the tombstone."""

from __future__ import annotations

import time
from typing import Callable

import pytest
import requests

from tests.conftest import Api, Emulator, FunctionHost, User, new_user

ADMIN = ("anonymous", "authenticated", "admin")


def _wait_for(condition: Callable[[], bool], seconds: float = 90, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _users_with_tokens(api: Api, count: int) -> list[tuple[User, dict]]:
    users = [new_user() for _ in range(count)]
    return [(u, api.token(u).json()) for u in users]


def _mark(api: Api, users: list[User]) -> requests.Response:
    return api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json={"appUserIds": [u.app_user_id for u in users]})


def _run_cleanup(base: str) -> None:
    response = requests.post(f"{base}/admin/functions/cleanup_deleted_users", json={"input": ""}, timeout=30)
    assert response.status_code == 202


def _swept(table, users: list[User]) -> bool:
    rows = {r.get("AppUserId"): r for r in table.query_entities("PartitionKey eq 'tombstones'")}
    return all(u.app_user_id in rows and rows[u.app_user_id].get("SweptAt") for u in users)


def test_ordinary_user_cannot_mark_users_deleted(api: Api):
    victim = new_user()
    api.token(victim)
    response = api.call("POST", "/api/manage/deleted-users", new_user(), json={"appUserIds": [victim.app_user_id]})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "NotAdmin"
    assert api.token(victim).status_code == 200


def test_anonymous_caller_cannot_mark_users_deleted(api: Api):
    response = api.call("POST", "/api/manage/deleted-users", json={"appUserIds": ["github|x"]})
    assert response.status_code == 401


@pytest.mark.parametrize("body", [{}, {"appUserIds": []}, {"appUserIds": "github|x"}, {"appUserIds": [1]}, {"ids": ["a"]}])
def test_malformed_deleted_users_request_is_rejected(api: Api, body: dict):
    response = api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json=body)
    assert response.status_code == 400


def test_tombstoned_user_is_refused_a_token_before_the_sweep(api: Api, emulator: Emulator):
    user = new_user()
    issued = api.token(user).json()
    assert _mark(api, [user]).json() == {"marked": 1, "matched": 1}
    response = api.token(user, fresh=True)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "AccountDeleted"
    assert issued["communicationUserId"] in emulator.identities()  # the sweep, not the request, deletes


def test_sweep_deletes_tombstoned_identities_and_leaves_others(api: Api, emulator: Emulator, stack: dict, table):
    doomed = _users_with_tokens(api, 5)
    kept = _users_with_tokens(api, 3)
    assert _mark(api, [u for u, _ in doomed]).status_code == 202

    _run_cleanup(stack["functionHost"])
    _wait_for(lambda: _swept(table, [u for u, _ in doomed]), what="tombstones swept")

    live = emulator.identities()
    for user, issued in doomed:
        assert issued["communicationUserId"] not in live
        assert emulator.verify(issued["token"])["reason"] == "deleted"
        assert list(table.query_entities("AppUserId eq @u and RowKey eq 'identity'", parameters={"u": user.app_user_id})) == []
    for user, issued in kept:
        assert issued["communicationUserId"] in live
        assert emulator.verify(issued["token"])["valid"]
    # Within the tombstone's retention a deleted account is still refused: no resurrection.
    assert api.token(doomed[0][0], fresh=True).status_code == 403


def _faulted(emulator: Emulator) -> int:
    return sum(emulator.stats().get("faulted", {}).values())


def test_sweep_survives_acs_throttling_and_outages(api: Api, emulator: Emulator, stack: dict, table):
    doomed = _users_with_tokens(api, 6)
    _mark(api, [u for u, _ in doomed])
    faulted_before = _faulted(emulator)
    emulator.fault(429, count=3, operations=["deleteIdentity"], retry_after=1)
    emulator.fault(503, count=3, operations=["deleteIdentity"], retry_after=1)
    try:
        _run_cleanup(stack["functionHost"])
        _wait_for(lambda: _swept(table, [u for u, _ in doomed]), what="tombstones swept despite faults")
    finally:
        emulator.clear_faults()
    assert _faulted(emulator) - faulted_before == 6, "the sweep should have met every injected 429 and 503"
    live = emulator.identities()
    assert all(issued["communicationUserId"] not in live for _, issued in doomed)


def test_sweep_finishes_when_acs_refuses_some_deletes_and_retries_them_next_run(api: Api, emulator: Emulator, stack: dict, table):
    """A non-retryable refusal (403, as with a missing role) fails those users, not the run."""
    doomed = _users_with_tokens(api, 4)
    _mark(api, [u for u, _ in doomed])
    host = FunctionHost(stack, {"CLEANUP_CONCURRENCY": "1"}, "cleanup-refused")
    emulator.fault(403, count=2, operations=["deleteIdentity"], retry_after=None)
    try:
        _run_cleanup(host.base)
        _wait_for(lambda: "cleanup found=" in host.log.read_text(), what="the sweep's summary")
    finally:
        emulator.clear_faults()
        host.stop()
    summary = next(line for line in host.log.read_text().splitlines() if "cleanup found=" in line)
    assert "failed=2" in summary
    _run_cleanup(stack["functionHost"])
    _wait_for(lambda: _swept(table, [u for u, _ in doomed]), what="the next run to finish them")
    assert not {issued["communicationUserId"] for _, issued in doomed} & emulator.identities()


def test_tombstone_rows_without_a_user_do_not_stop_the_sweep(api: Api, emulator: Emulator, stack: dict, table):
    """Backends may write tombstones themselves; a malformed row is skipped, the rest swept."""
    table.upsert_entity({"PartitionKey": "tombstones", "RowKey": f"junk-{new_user().user_id}", "Note": "no AppUserId"})
    doomed = _users_with_tokens(api, 2)
    _mark(api, [u for u, _ in doomed])
    _run_cleanup(stack["functionHost"])
    _wait_for(lambda: _swept(table, [u for u, _ in doomed]), what="valid tombstones swept past a malformed row")


def test_dry_run_reports_without_deleting(api: Api, emulator: Emulator, stack: dict, table):
    doomed = _users_with_tokens(api, 2)
    _mark(api, [u for u, _ in doomed])
    dry = FunctionHost(stack, {"CLEANUP_DRY_RUN": "true"}, "cleanup-dry-run")
    try:
        _run_cleanup(dry.base)
        _wait_for(lambda: "cleanup dry run" in dry.log.read_text(), what="the dry run's summary")
    finally:
        dry.stop()
    live = emulator.identities()
    assert all(issued["communicationUserId"] in live for _, issued in doomed)
    # Every one of them is untouched: tombstone present and not marked swept, mapping still there.
    rows = {r.get("AppUserId"): r for r in table.query_entities("PartitionKey eq 'tombstones'")}
    for user, issued in doomed:
        assert user.app_user_id in rows and not rows[user.app_user_id].get("SweptAt")
        mapping = list(table.query_entities("AppUserId eq @u and RowKey eq 'identity'", parameters={"u": user.app_user_id}))
        assert [m["CommunicationUserId"] for m in mapping] == [issued["communicationUserId"]]
