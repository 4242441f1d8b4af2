"""POST /api/token: one ACS identity per app user; tokens issued and refreshed for it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import Api, Emulator, new_user


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


def test_token_is_reissued_for_same_user(any_api: Api, emulator: Emulator):
    user = new_user()
    first = any_api.token(user).json()
    second = any_api.token(user, fresh=True).json()
    assert first["communicationUserId"] == second["communicationUserId"]
    assert first["token"] != second["token"]
    assert emulator.verify(first["token"])["valid"] and emulator.verify(second["token"])["valid"]


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
    response = any_api.token(user, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert "token" not in response.json()
    assert emulator.identities() == before


def test_malformed_json_is_rejected(api: Api):
    response = api.call("POST", "/api/token", new_user(), data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "MalformedJson"


def test_oversized_body_is_rejected(api: Api):
    response = api.call("POST", "/api/token", new_user(), data=b"{" + b" " * 20_000 + b"}",
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "PayloadTooLarge"


def test_no_caller_gets_401(any_api: Api):
    response = any_api.call("POST", "/api/token")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "MissingCaller"


def test_malformed_principal_gets_401_not_500(api: Api):
    response = api.call("POST", "/api/token", headers={"x-ms-client-principal": "%%%not-base64"})
    assert response.status_code == 401


def test_concurrent_first_calls_create_exactly_one_identity(api: Api, emulator: Emulator):
    user = new_user()
    before = emulator.identities()
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: api.token(user), range(50)))
    assert all(r.status_code == 200 for r in responses), {r.status_code for r in responses}
    ids = {r.json()["communicationUserId"] for r in responses}
    assert len(ids) == 1
    assert emulator.identities() - before == ids


def test_concurrent_first_calls_on_two_instances_leave_no_orphan(api: Api, connection_string_api: Api, emulator: Emulator):
    """Two function instances race for one new user: one mapping wins, the loser deletes its own
    identity, so exactly one identity is left at ACS."""
    user = new_user()
    before = emulator.identities()
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda i: (api if i % 2 else connection_string_api).token(user), range(20)))
    assert all(r.status_code == 200 for r in responses)
    ids = {r.json()["communicationUserId"] for r in responses}
    assert len(ids) == 1
    assert emulator.identities() - before == ids
