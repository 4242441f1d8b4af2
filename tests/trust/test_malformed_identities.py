"""A generated corpus of malformed ids, roles and names (lone surrogates, control and bidi
characters, ids not of the ``provider|id`` shape), sent on every endpoint wherever a caller can put
them: the principal header, a bearer token's claims, and the bodies. None may be answered >= 500;
ids and roles are refused (401 in the caller's identity, 400 in a body), and nobody gets a token."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections import Counter

import pytest
import requests

from tests.conftest import Api, Emulator, new_user
from tests.trust.conftest import Issuer

ENDPOINTS = [
    ("POST", "/api/token"),
    ("POST", "/api/token/revoke"),
    ("GET", "/api/identity"),
    ("DELETE", "/api/identity"),
    ("POST", "/api/teams/token"),
    ("POST", "/api/manage/deleted-users"),
    ("GET", "/api/health"),
]
AUTHENTICATED_ENDPOINTS = [e for e in ENDPOINTS if e[1] != "/api/health"]
#: Requests the whole module sends (stated in the README).
CORPUS_REQUESTS = 1938

#: Characters that must never become part of an id or a role: lone surrogates (high and low),
#: C0/C1 controls, bidi controls and isolates, zero-width and other format characters, line and
#: paragraph separators.
BAD_CHARACTERS = [
    "\ud800", "\udbff", "\udc00", "\udfff",
    "\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f",
    "\u202a", "\u202b", "\u202d", "\u202e", "\u2066", "\u2067", "\u2069", "\u200e", "\u200f", "\u061c",
    "\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad",
    "\u2028", "\u2029",
]


def _placed(character: str) -> list[str]:
    return [f"{character}user", f"us{character}er", f"user{character}"]


#: Every bad character at the start, middle and end of an otherwise good value.
BAD_TEXTS = [text for character in BAD_CHARACTERS for text in _placed(character)]
#: App user ids that are not ``<provider>|<user id>``: besides BAD_TEXTS inside a good shape.
NOT_IDS = [
    "", " ", "github", "github|", "github| ", "|user", "GitHub|user", "git hub|user", " github|user", "github |user",
    "-github|user", "g" * 65 + "|user", "http://|user", "ftp://issuer|user", "entra:not-a-guid|user",
    "entra:" + str(uuid.uuid4()).upper() + "|user", "github|" + "u" * 600, "x" * 2000,
]
BAD_IDS = NOT_IDS + [f"github|{text}" for text in BAD_TEXTS] + [f"{text}|user" for text in BAD_TEXTS[:12]]


def _principal(**fields) -> dict[str, str]:
    document = {"identityProvider": "github", "userId": "corpus-user", "userDetails": "corpus@example.test",
                "userRoles": ["anonymous", "authenticated"], **fields}
    return {"x-ms-client-principal": base64.b64encode(json.dumps(document).encode()).decode()}


def _body(path: str) -> dict | None:
    if path == "/api/teams/token":
        oid = str(uuid.uuid4())
        return {"teamsToken": "e30.e30.", "appId": str(uuid.uuid4()), "userId": oid}
    if path == "/api/manage/deleted-users":
        return {"appUserIds": ["github|corpus-never-marked"]}
    return None


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.statuses: Counter[int] = Counter()

    def send(self, api: Api, method: str, path: str, *, headers: dict[str, str] | None = None, body=None) -> requests.Response:
        """A JSON body goes as a client sends one, declared JSON: a body without that Content-Type
        is refused (400 UnsupportedContentType, tests/attacks/test_cross_site_requests.py) before
        its fields are read, and these tests are about what the fields and the caller hold."""
        sent = {**(headers or {}), **({} if body is None else {"Content-Type": "application/json"})}
        response = api.session.request(method, f"{api.base}{path}", headers=sent,
                                       data=None if body is None else json.dumps(body), timeout=60)
        self.sent += 1
        self.statuses[response.status_code] += 1
        assert response.status_code < 500, f"{method} {path} answered {response.status_code}: {response.text[:200]!r}"
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
        return response


@pytest.fixture(scope="module")
def tally(emulator: Emulator):
    counter = Tally()
    before = emulator.identities()
    yield counter
    # Ids, roles and providers never reached ACS: the only caller who could is the well-formed one.
    assert len(emulator.identities() - before) <= 1
    print(f"\nmalformed identities: {counter.sent} requests, statuses {dict(sorted(counter.statuses.items()))}")
    # The README's figure (section "API"); a change to the corpus changes it there too.
    assert counter.sent == CORPUS_REQUESTS or counter.sent < CORPUS_REQUESTS // 2, "update CORPUS_REQUESTS and the README"


def test_malformed_user_ids_in_the_principal_are_401_on_every_endpoint(api: Api, tally: Tally):
    for text, (method, path) in itertools.product(BAD_TEXTS + ["", " ", "u" * 513], AUTHENTICATED_ENDPOINTS):
        response = tally.send(api, method, path, headers=_principal(userId=text), body=_body(path))
        assert response.status_code == 401, (text, path)


def test_malformed_roles_in_the_principal_are_401_on_every_endpoint(api: Api, tally: Tally):
    for text, (method, path) in itertools.product(BAD_TEXTS, AUTHENTICATED_ENDPOINTS):
        response = tally.send(api, method, path, headers=_principal(userRoles=["authenticated", text]), body=_body(path))
        assert response.status_code == 401, (text, path)


def test_malformed_admin_roles_do_not_pass_for_admin(api: Api, tally: Tally):
    for character in BAD_CHARACTERS:
        for role in (f"admin{character}", f"{character}admin"):
            response = tally.send(api, "POST", "/api/manage/deleted-users",
                                  headers=_principal(userRoles=["authenticated", role]), body=_body("/api/manage/deleted-users"))
            assert response.status_code == 401


def test_malformed_providers_in_the_principal_are_401_on_every_endpoint(api: Api, tally: Tally):
    providers = [f"git{c}hub" for c in BAD_CHARACTERS] + ["git|hub", "git hub", "", "g" * 65, "github/x"]
    for provider, (method, path) in itertools.product(providers, AUTHENTICATED_ENDPOINTS):
        response = tally.send(api, method, path, headers=_principal(identityProvider=provider), body=_body(path))
        assert response.status_code == 401, (provider, path)


def test_malformed_names_never_fail_the_service(api: Api, tally: Tally):
    """userDetails is a display name the service never uses: whatever it holds, no 5xx."""
    for text, (method, path) in itertools.product(BAD_TEXTS[::3], ENDPOINTS):
        tally.send(api, method, path, headers=_principal(userDetails=text), body=_body(path))


def test_malformed_bearer_subjects_are_401_on_every_endpoint(api: Api, issuer: Issuer, tally: Tally):
    for text in BAD_TEXTS[::2]:
        headers = issuer.headers(sub=text)
        for method, path in AUTHENTICATED_ENDPOINTS:
            response = tally.send(api, method, path, headers=headers, body=_body(path))
            assert response.status_code == 401, (text, path)


def test_malformed_bearer_claims_grant_nothing(api: Api, issuer: Issuer, tally: Tally):
    """Roles, tenant, object id and e-mail with bad characters are ignored, never believed."""
    for text in BAD_TEXTS[::3]:
        headers = issuer.headers(roles=[f"admin{text}"], claims={"tid": text, "oid": text, "email": f"a{text}@x.example"})
        response = tally.send(api, "POST", "/api/manage/deleted-users", headers=headers, body=_body("/api/manage/deleted-users"))
        assert response.status_code == 403


def test_malformed_app_user_ids_are_400_at_the_operator_endpoint(api: Api, tally: Tally):
    admin = new_user(("anonymous", "authenticated", "admin")).headers
    for bad in BAD_IDS:
        response = tally.send(api, "POST", "/api/manage/deleted-users", headers=admin,
                              body={"appUserIds": ["github|corpus-never-marked", bad]})
        assert response.status_code == 400, repr(bad)
        assert response.json()["error"]["code"] == "InvalidAppUserId"


def test_malformed_teams_ids_are_400(api: Api, tally: Tally):
    user = new_user().headers
    for bad in BAD_TEXTS[::2] + ["", "not-a-guid", str(uuid.uuid4()) + "x"]:
        for field in ("appId", "userId"):
            body = {"teamsToken": "e30.e30.", "appId": str(uuid.uuid4()), "userId": str(uuid.uuid4()), field: bad}
            response = tally.send(api, "POST", "/api/teams/token", headers=user, body=body)
            assert response.status_code == 400, (field, repr(bad))


def test_malformed_scopes_are_400(api: Api, tally: Tally):
    user = new_user().headers
    for bad in BAD_TEXTS[::2]:
        response = tally.send(api, "POST", "/api/token", headers=user, body={"scopes": ["chat", bad]})
        assert response.status_code == 400, repr(bad)
