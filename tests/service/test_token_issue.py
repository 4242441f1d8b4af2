"""POST /api/token: one ACS identity per app user; tokens issued and refreshed for it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from typing import Callable, Iterator

import pytest
import requests

from tests.conftest import CREATES, Api, Emulator, expect_error, new_user


def _expires(body: dict) -> datetime:
    return datetime.fromisoformat(body["expiresOn"].replace("Z", "+00:00"))


def test_first_call_creates_identity_and_returns_valid_token(any_api: Api, emulator: Emulator):
    user = new_user()
    response = any_api.token(user)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["communicationUserId"].startswith("8:acs:")
    assert body["communicationUserId"] in emulator.identities()
    verdict = emulator.verify(body["token"])
    assert verdict["valid"] and verdict["communicationUserId"] == body["communicationUserId"]
    assert response.headers["Cache-Control"] == "no-store"
    assert body["expiresOn"].endswith("Z")
    assert timedelta(minutes=55) < _expires(body) - datetime.now(timezone.utc) <= timedelta(minutes=61)


def test_token_is_reissued_for_same_user(any_api: Api, emulator: Emulator, identical_tokens: bool):
    user = new_user()
    first = any_api.token(user).json()
    issues = emulator.calls("issueAccessToken")
    second = any_api.token(user, fresh=True).json()
    assert emulator.calls("issueAccessToken") - issues == 1, "a no-cache request is issued a new token by ACS"
    assert first["communicationUserId"] == second["communicationUserId"]
    if not identical_tokens:  # where every issue is a new string, the answer is the one just issued
        assert first["token"] != second["token"]
    for token in (first["token"], second["token"]):
        verdict = emulator.verify(token)
        assert verdict["valid"] and verdict["communicationUserId"] == first["communicationUserId"], verdict


def test_different_users_get_different_identities(api: Api):
    a, b = new_user(), new_user()
    assert api.token(a).json()["communicationUserId"] != api.token(b).json()["communicationUserId"]


@pytest.mark.parametrize("scopes", [["chat"], ["voip"], ["chat", "voip"]])
def test_token_carries_the_requested_scopes(api: Api, emulator: Emulator, scopes: list[str]):
    body = api.token(new_user(), {"scopes": scopes}).json()
    assert sorted(emulator.verify(body["token"])["scopes"]) == sorted(scopes)


@pytest.mark.parametrize("minutes", [60, 1440])
def test_token_lifetime_follows_the_request(api: Api, minutes: int):
    body = api.token(new_user(), {"expiresInMinutes": minutes}).json()
    remaining = _expires(body) - datetime.now(timezone.utc)
    assert timedelta(minutes=minutes - 5) < remaining <= timedelta(minutes=minutes + 1)


@pytest.mark.parametrize(
    "body, code",
    [
        ({"scopes": ["chat.join"]}, "InvalidScope"),  # known to ACS but not allowed by this app
        ({"scopes": ["admin"]}, "InvalidScope"),
        ({"scopes": []}, "InvalidScope"),
        ({"scopes": "chat"}, "InvalidScope"),
        ({"expiresInMinutes": 59}, "InvalidLifetime"),
        ({"expiresInMinutes": 1441}, "InvalidLifetime"),
        ({"expiresInMinutes": "60"}, "InvalidLifetime"),
        ({"scope": ["chat"]}, "UnknownField"),
    ],
)
def test_invalid_token_request_is_rejected_without_a_token(any_api: Api, emulator: Emulator, body: dict, code: str):
    user = new_user()
    before = emulator.identities()
    calls = emulator.calls()
    response = any_api.token(user, body)
    expect_error(response, 400, code)
    assert emulator.identities() == before and emulator.calls() == calls, "a refused request must not reach ACS"


def test_malformed_json_is_rejected(api: Api):
    response = api.call("POST", "/api/token", new_user(), data=b"{not json", headers={"Content-Type": "application/json"})
    expect_error(response, 400, "MalformedJson")


def test_oversized_body_is_rejected(api: Api):
    response = api.call("POST", "/api/token", new_user(), data=b"{" + b" " * 20_000 + b"}",
                        headers={"Content-Type": "application/json"})
    expect_error(response, 413, "PayloadTooLarge")


def test_no_caller_gets_401(any_api: Api):
    expect_error(any_api.call("POST", "/api/token"), 401, "MissingCaller")


def test_malformed_principal_gets_401_not_500(api: Api):
    response = api.call("POST", "/api/token", headers={"x-ms-client-principal": "%%%not-base64"})
    expect_error(response, 401, "InvalidPrincipal")


@pytest.fixture
def slow_acs(emulator: Emulator) -> Iterator[Emulator]:
    """ACS answering after a second: concurrent requests are then certainly in flight together."""
    emulator.configure(latencyMs=1000)
    yield emulator
    emulator.configure(latencyMs=None)


def _together(count: int, call: Callable[[int], requests.Response]) -> list[requests.Response]:
    """``count`` requests released at the same moment, each on its own thread and connection."""
    gate = threading.Barrier(count)

    def one(i: int) -> requests.Response:
        gate.wait()
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_concurrent_first_calls_create_exactly_one_identity(api: Api, slow_acs: Emulator):
    """50 first calls of one user, all asking for a new token (no-cache) while ACS takes a second:
    one create, one identity. A no-cache request never joins an issue that began before it came
    (tests/chaos/test_issue_in_flight.py), so those that come once the create is under way share
    the issues that begin after them: at most two more ACS calls (one under way, one queued behind
    it), not one each. Run one after another the same requests would cost 50 calls and give 50
    tokens (shown for three at the end)."""
    user = new_user()
    before, calls = slow_acs.identities(), slow_acs.calls()
    creates = slow_acs.calls("createIdentity", "createIdentityAndToken")
    responses = _together(50, lambda _: Api(api.base).token(user, fresh=True))
    assert [r.status_code for r in responses] == [200] * 50, {r.status_code for r in responses}
    ids = {r.json()["communicationUserId"] for r in responses}
    assert len(ids) == 1
    assert slow_acs.identities() - before == ids
    assert slow_acs.calls(*("createIdentity", "createIdentityAndToken")) - creates == 1, "one create for 50 first calls"
    assert slow_acs.calls() - calls <= 3, "50 concurrent first calls must share one create and at most two issues"
    assert len({r.json()["token"] for r in responses}) <= 3

    # Counted at ACS, not by comparing strings: real ACS may give the same string twice in a second.
    calls = slow_acs.calls("issueAccessToken")
    sequential = [api.token(user, fresh=True).json()["token"] for _ in range(3)]
    assert slow_acs.calls("issueAccessToken") - calls == 3
    assert all(slow_acs.verify(token)["communicationUserId"] in ids for token in sequential)


def test_concurrent_requests_of_a_known_user_share_one_acs_call(api: Api, slow_acs: Emulator, identical_tokens: bool):
    user = new_user()
    first = api.token(user).json()
    issues = slow_acs.calls("issueAccessToken")
    responses = _together(20, lambda _: Api(api.base).token(user, fresh=True))
    assert [r.status_code for r in responses] == [200] * 20
    # No-cache: none joins an issue begun before it came, so the burst shares the one under way
    # when the first came and the one queued behind it (tests/chaos/test_issue_in_flight.py);
    # none is handed the first token again, so the burst costs at least one issue.
    burst = slow_acs.calls("issueAccessToken") - issues
    assert 1 <= burst <= 2, f"20 concurrent no-cache requests of one user cost {burst} issues at ACS, not 1 or 2"
    tokens = {r.json()["token"] for r in responses}
    assert len(tokens) <= burst
    if not identical_tokens:  # where every issue is a new string, none of them is the first token
        assert first["token"] not in tokens


def test_a_reload_storm_of_a_known_user_shares_one_acs_call(api: Api, slow_acs: Emulator):
    """20 plain requests of a known user at once, for a lifetime no recent token of theirs has
    (so none is handed out again), share the issue under way: one call at ACS, or two when the
    burst straddles a REVOCATION_CHECK_SECONDS window (a request joins only an issue begun in its
    own window)."""
    user = new_user()
    identity = api.token(user).json()["communicationUserId"]
    issues = slow_acs.calls("issueAccessToken")
    responses = _together(20, lambda _: Api(api.base).token(user, {"expiresInMinutes": 120}))
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses if r.status_code != 200]
    burst = slow_acs.calls("issueAccessToken") - issues
    assert 1 <= burst <= 2, f"20 concurrent requests of one known user cost {burst} issues at ACS, not 1 or 2"
    assert {r.json()["communicationUserId"] for r in responses} == {identity}
    assert len({r.json()["token"] for r in responses}) <= burst


def test_a_no_cache_request_that_joins_a_first_call_under_way_gets_a_token_issued_after_it_came(
    api: Api, slow_acs: Emulator, identical_tokens: bool
):
    """The cold path too: a second no-cache request of a new user, sent while the first call's
    create is at ACS (seen under way at the emulator, which answers after a second), shares that
    identity but not the token the create returned, which began before it came: one create and
    one issue, counted at ACS."""
    user = new_user()
    creates, issues = slow_acs.calls(*CREATES), slow_acs.calls("issueAccessToken")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(lambda: Api(api.base).token(user, fresh=True))
        slow_acs.wait_until_under_way(*CREATES)
        second = Api(api.base).token(user, fresh=True)
        first = first.result()
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert first.json()["communicationUserId"] == second.json()["communicationUserId"]
    assert slow_acs.calls(*CREATES) - creates == 1
    assert slow_acs.calls("issueAccessToken") - issues == 1, "the later no-cache request was given the create's token"
    if not identical_tokens:
        assert second.json()["token"] != first.json()["token"]


def test_a_recent_token_is_handed_out_again_and_no_cache_gets_a_new_one(
    api: Api, connection_string_api: Api, emulator: Emulator, identical_tokens: bool
):
    user = new_user()
    first = api.token(user).json()
    issues = emulator.calls("issueAccessToken")
    again = api.token(user).json()
    assert again == first, "a token issued moments ago for the same scopes and lifetime is handed out again"
    assert emulator.calls("issueAccessToken") == issues
    fresh = api.token(user, fresh=True).json()
    assert fresh["communicationUserId"] == first["communicationUserId"]
    assert emulator.calls("issueAccessToken") - issues == 1
    if not identical_tokens:
        assert fresh["token"] != first["token"]
    other_scopes = api.token(user, {"scopes": ["chat"]}).json()
    assert other_scopes["token"] not in (first["token"], fresh["token"]), "never reused across scopes"
    assert sorted(emulator.verify(other_scopes["token"])["scopes"]) == ["chat"]
    # Another instance that has not seen the user yet issues its own new token too.
    issues = emulator.calls("issueAccessToken")
    elsewhere = connection_string_api.token(user, fresh=True).json()
    assert emulator.calls("issueAccessToken") - issues == 1
    if not identical_tokens:
        assert elsewhere["token"] not in (first["token"], fresh["token"])


def test_concurrent_first_calls_on_two_instances_leave_no_orphan(api: Api, connection_string_api: Api, slow_acs: Emulator):
    """Two function instances race for one new user while ACS takes a second: both create an
    identity, one mapping wins, and the loser deletes its own: two creates, one delete, one
    identity left, and both callers get it."""
    api.token(new_user()), connection_string_api.token(new_user())  # both instances warm
    user = new_user()
    before = slow_acs.identities()
    creates, deletes = slow_acs.calls(*CREATES), slow_acs.calls("deleteIdentity")
    responses = _together(2, lambda i: (api if i else connection_string_api).token(user))
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    ids = {r.json()["communicationUserId"] for r in responses}
    assert len(ids) == 1
    assert slow_acs.calls(*CREATES) - creates == 2, "the race did not happen: only one instance created an identity"
    assert slow_acs.calls("deleteIdentity") - deletes == 1, "the loser must delete the identity it made"
    assert slow_acs.identities() - before == ids
