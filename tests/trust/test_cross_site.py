"""Every route that changes state or spends a budget refuses another site's page first: 403
CrossSiteRequest before the caller is read (a request with no caller at all gets it, not 401),
before any budget is spent and before ACS is asked anything; while this site's own pages, older
browsers on this host and clients that are not browsers are served. Each refusal is also checked
against openapi.yaml (tests/service/test_openapi.py counts it in its every-documented-status test).
The browser path through the Static Web Apps CLI: tests/e2e."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Callable

import pytest
import requests

from tests.conftest import Api, Emulator, expect_error, new_user
from tests.trust.conftest import teams_token

OPENAPI_TESTS = Path(__file__).resolve().parents[1] / "service" / "test_openapi.py"
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Origin": "https://attacker.example"}
APP = "0d8f5e2a-4444-4b1c-9d2e-3f4a5b6c7d8e"
ADMIN = ("anonymous", "authenticated", "admin")


def _check() -> Callable:
    """test_openapi.py's check, from the module pytest collected when it is in the run (so its
    final test counts these answers), else imported afresh."""
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == OPENAPI_TESTS:
            return module.check
    from tests.service.test_openapi import check

    return check


@pytest.fixture(scope="module")
def guest_api(start_host) -> Api:
    api, _ = start_host({"GUEST_ACCESS_ENABLED": "true", "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE": "1",
                         "GUEST_REQUESTS_PER_MINUTE": "1000"}, "cross-site-guest")
    return api


def _routes(stack: dict) -> list[tuple[str, str, dict]]:
    """(method, path, request arguments) of every route that changes state or spends a budget."""
    oid = "5c3a2b1d-6666-4e7f-8a9b-0c1d2e3f4a5b"
    return [
        ("POST", "/token", {}),
        ("POST", "/token", {"json": {"scopes": ["voip"]}}),
        ("POST", "/token/revoke", {}),
        ("DELETE", "/identity", {}),
        ("POST", "/teams/token", {"json": {"teamsToken": teams_token(stack, oid, APP), "appId": APP, "userId": oid}}),
        ("POST", "/manage/deleted-users", {"json": {"appUserIds": ["github|cross-site-never-marked"]}}),
    ]


@pytest.mark.parametrize("signed_in", [True, False], ids=["as-a-signed-in-admin", "with-no-caller-at-all"])
def test_every_state_changing_route_refuses_another_sites_page_before_reading_the_caller(
        api: Api, emulator: Emulator, stack: dict, signed_in: bool):
    victim = new_user(ADMIN)
    assert api.token(victim).status_code == 200
    identities, calls = emulator.identities(), emulator.calls()
    check = _check()
    for method, path, kwargs in _routes(stack):
        response = api.call(method, f"/api{path}", victim if signed_in else None, headers=CROSS_SITE, **kwargs)
        expect_error(response, 403, "CrossSiteRequest")
        check(response, path, method.lower())
    assert emulator.identities() == identities and emulator.calls() == calls, "another site's page reached ACS"
    assert api.call("GET", "/api/identity", victim).status_code == 200, "another site's page deleted the identity"
    assert api.call("DELETE", "/api/identity", victim).status_code == 204


def test_another_sites_page_cannot_spend_a_guests_budget_or_make_identities(guest_api: Api, emulator: Emulator,
                                                                            stack: dict, table):
    client = f"203.0.113.{random.randrange(1, 255)}"
    sent = {"X-Forwarded-For": f"{client}:{random.randrange(1024, 65535)}"}
    before = emulator.identities()
    check = _check()
    for _ in range(3):
        response = guest_api.call("POST", "/api/guest/token", headers={**sent, **CROSS_SITE}, json={"displayName": "Ada"})
        expect_error(response, 403, "CrossSiteRequest")
        check(response, "/guest/token", "post")
    assert emulator.identities() == before
    own = guest_api.call("POST", "/api/guest/token", headers={**sent, "Sec-Fetch-Site": "same-origin"},
                         json={"displayName": "Ada"})
    assert own.status_code == 200, f"the guest's own request after another site's: {own.status_code} {own.text[:200]}"
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

    identity = own.json()["communicationUserId"]
    CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"]).delete_user(
        CommunicationUserIdentifier(identity))
    table.delete_entity("guests", identity)


def test_a_body_that_does_not_say_it_is_json_is_refused_on_every_route_that_reads_one(api: Api, emulator: Emulator):
    """No Content-Type, text/plain and form bodies are what a page can send anywhere without a
    preflight; the same JSON text with its JSON type is served. The body is read after the caller
    is known (and, at the operator endpoint, after the admin role is checked): an admin sends it."""
    user = new_user(ADMIN)
    before = emulator.identities()
    for content_type in (None, "text/plain;charset=UTF-8", "application/x-www-form-urlencoded"):
        headers = {} if content_type is None else {"Content-Type": content_type}
        for path in ("/api/token", "/api/token/revoke", "/api/teams/token", "/api/manage/deleted-users"):
            response = api.call("POST", path, user, headers=headers, data=b'{"scopes": ["voip"]}')
            assert {h.lower(): v for h, v in response.request.headers.items()}.get("content-type") == content_type
            expect_error(response, 400, "UnsupportedContentType")
    assert emulator.identities() == before
    served = api.call("POST", "/api/token", user, headers={"Content-Type": "application/json"}, data=b'{"scopes": ["voip"]}')
    assert served.status_code == 200, served.text
    assert api.call("DELETE", "/api/identity", user).status_code == 204


def _origin_of(api: Api) -> str:
    """The origin of the host the tests call (requests sends its host and port as Host)."""
    return api.base.split("/api")[0].rstrip("/")


@pytest.mark.parametrize("headers", [
    pytest.param(lambda api: {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Origin": _origin_of(api)},
                 id="the-browser-says-same-origin"),
    pytest.param(lambda api: {"Origin": _origin_of(api)}, id="an-older-browser-on-this-host"),
    pytest.param(lambda api: {}, id="a-client-that-is-not-a-browser"),
])
def test_this_sites_pages_and_other_clients_are_served(api: Api, headers: Callable[[Api], dict]):
    user, sent = new_user(), headers(api)
    response = api.call("POST", "/api/token", user, headers=sent)
    assert response.status_code == 200, response.text
    assert api.call("POST", "/api/token/revoke", user, headers=sent).status_code == 204
    assert api.call("DELETE", "/api/identity", user, headers=sent).status_code == 204


def test_an_older_browser_on_another_site_is_refused(api: Api):
    """No fetch metadata (a browser from before 2023): the Origin alone says it."""
    user = new_user()
    response = api.call("POST", "/api/token", user, headers={"Origin": "https://attacker.example"})
    expect_error(response, 403, "CrossSiteRequest")
    expect_error(api.call("POST", "/api/token", user, headers={"Origin": "null"}), 403, "CrossSiteRequest")


def test_an_origin_of_another_port_of_this_host_is_refused(api: Api):
    host = requests.utils.urlparse(_origin_of(api)).hostname
    expect_error(api.call("POST", "/api/token", new_user(), headers={"Origin": f"http://{host}:1"}), 403, "CrossSiteRequest")
