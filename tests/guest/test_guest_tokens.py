"""POST /api/guest/token: a person who is not an app user gets a new, short-lived ACS identity
with a voip.join token (to join a Teams meeting from the page), recorded before it is handed out;
off unless GUEST_ACCESS_ENABLED. Checked at the emulator (/_emulator/tokens:verify, identities,
call counters) and in the table, not by the absence of errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from tests.conftest import CREATES, Api, Emulator, FunctionHost, expect_error, new_user
from tests.guest.conftest import GuestHost, ask, guest_rows, new_client


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_guest_token_carries_only_voip_join_for_at_most_60_minutes(guests: GuestHost, emulator: Emulator, table):
    before = emulator.calls(*CREATES)
    asked_at = datetime.now(timezone.utc)
    response = ask(guests.api, "  Ada Lovelace  ")
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"communicationUserId", "token", "expiresOn", "displayName", "scopes"}
    assert body["displayName"] == "Ada Lovelace" and body["scopes"] == ["voip.join"]
    assert body["communicationUserId"].startswith("8:acs:") and body["expiresOn"].endswith("Z")

    verdict = emulator.verify(body["token"])
    assert verdict["valid"] and verdict["scopes"] == ["voip.join"]
    assert verdict["communicationUserId"] == body["communicationUserId"]
    expires = _moment(verdict["expiresOn"])
    assert expires <= datetime.now(timezone.utc) + timedelta(minutes=60), "a guest token lives at most 60 minutes"
    assert expires >= asked_at + timedelta(minutes=59), "the token is for the guest lifetime, not less"
    assert abs(_moment(body["expiresOn"]) - expires) < timedelta(seconds=1)

    assert emulator.calls(*CREATES) - before == 1
    assert body["communicationUserId"] in emulator.identities()
    recorded = guest_rows(table)[body["communicationUserId"]]
    assert abs(recorded - expires) < timedelta(seconds=1), "the identity is recorded with its token's expiry"


def test_every_call_makes_a_new_identity_even_for_the_same_client(guests: GuestHost, emulator: Emulator):
    client = new_client()
    before = emulator.calls(*CREATES)
    first, second = ask(guests.api, "Grace", client=client), ask(guests.api, "Grace", client=client)
    assert first.status_code == second.status_code == 200
    assert first.json()["communicationUserId"] != second.json()["communicationUserId"]
    assert emulator.calls(*CREATES) - before == 2


def test_a_signed_in_caller_gets_a_guest_identity_that_is_not_theirs(guests: GuestHost, api: Api, emulator: Emulator):
    user = new_user()
    response = ask(guests.api, "Signed In Person", headers=user.headers)
    assert response.status_code == 200, response.text
    assert emulator.verify(response.json()["token"])["scopes"] == ["voip.join"]
    # A guest is not an app user: no mapping was made for the person who happened to be signed in.
    expect_error(api.call("GET", "/api/identity", user), 404, "IdentityNotFound")


def test_a_signed_in_caller_in_the_guest_role_gets_the_same_guest_grant_at_api_token(guests: GuestHost, emulator: Emulator):
    """The one guest policy: with no TOKEN_ROLE_POLICY, a caller in the guest role asking
    /api/token gets voip.join for 60 minutes, as an anonymous guest does."""
    guest_member = new_user(("anonymous", "authenticated", "guest"))
    response = guests.api.token(guest_member)
    assert response.status_code == 200, response.text
    verdict = emulator.verify(response.json()["token"])
    assert verdict["scopes"] == ["voip.join"]
    assert _moment(verdict["expiresOn"]) <= datetime.now(timezone.utc) + timedelta(minutes=60)
    expect_error(guests.api.token(guest_member, {"scopes": ["chat"]}), 403, "ScopeNotAllowed")
    expect_error(guests.api.token(guest_member, {"expiresInMinutes": 120}), 403, "LifetimeNotAllowed")


@pytest.fixture(scope="module")
def defaults(stack: dict) -> Iterator[FunctionHost]:
    """A host with the deployment's defaults for guests and scopes (nothing set)."""
    host = FunctionHost(stack, {"GUEST_ACCESS_ENABLED": "", "ACS_ALLOWED_SCOPES": "", "ACS_DEFAULT_SCOPES": ""}, "guests-defaults")
    yield host
    host.stop()


def test_guest_access_is_off_by_default(defaults: FunctionHost, emulator: Emulator):
    api = Api(defaults.base)
    before = emulator.calls(*CREATES)
    for body in ({"displayName": "Ada"}, {"displayName": ""}, {"nope": 1}):
        expect_error(ask(api, json=body), 404, "GuestAccessDisabled")
    assert emulator.calls(*CREATES) == before


def test_default_scopes_are_voip_only_and_chat_is_refused_without_a_startup_warning(defaults: FunctionHost, emulator: Emulator):
    api = Api(defaults.base)
    user = new_user()
    response = api.token(user)
    assert response.status_code == 200, response.text
    assert emulator.verify(response.json()["token"])["scopes"] == ["voip"]
    expect_error(api.token(user, {"scopes": ["chat"]}), 400, "InvalidScope")
    assert "retires on 2028-09-30" not in defaults.log_text()


def test_chat_scopes_when_configured_log_one_retirement_warning_at_startup(stack: dict):
    """The stack's own host allows chat (its settings say so): its log says once that chat
    retires on 2028-09-30."""
    from tests.conftest import run_log_dir

    log = (run_log_dir(stack) / "functions.log").read_text(errors="replace")
    warnings = [line for line in log.splitlines() if "retires on 2028-09-30" in line]
    assert len(warnings) == 1, warnings
    assert "chat" in warnings[0] and "ACS_ALLOWED_SCOPES" in warnings[0]
