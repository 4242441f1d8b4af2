"""Who the caller is, seen through the function host: OIDC bearer tokens from the stack's local
issuer, and the principal header trusted only where the settings say the platform sets it."""

from __future__ import annotations

import requests
import pytest

from tests.conftest import Api, Emulator, FunctionHost, expect_error, new_user


def _bearer(stack: dict, **claims) -> dict[str, str]:
    body = {"sub": claims.pop("sub", f"sub-{new_user().user_id}"), "aud": claims.pop("aud", stack["oidcAudience"]), **claims}
    token = requests.post(f"{stack['oidcIssuer']}/_local/token", json=body, timeout=10).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def test_bearer_caller_gets_a_token_for_issuer_qualified_user(api: Api, stack: dict, emulator: Emulator):
    headers = _bearer(stack, sub="alice")
    response = api.call("POST", "/api/token", headers=headers)
    assert response.status_code == 200, response.text
    assert emulator.verify(response.json()["token"])["valid"]
    identity = api.call("GET", "/api/identity", headers=headers).json()
    assert identity["appUserId"] == f"{stack['oidcIssuer']}|alice"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "api://someone-else"},
        {"iss": "http://127.0.0.1:1/other-issuer"},
        {"expiresInSeconds": -600},
    ],
    ids=["other-audience", "other-issuer", "expired"],
)
def test_bearer_token_for_another_audience_or_issuer_is_401(api: Api, stack: dict, emulator: Emulator, claims: dict):
    before = emulator.identities()
    response = api.call("POST", "/api/token", headers=_bearer(stack, **claims))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidBearerToken"
    assert emulator.identities() == before


def test_bearer_admin_role_may_mark_users_deleted(api: Api, stack: dict):
    """An OIDC caller whose ``roles`` claim holds admin marks users deleted: the answer counts
    the ids marked and those with an identity (openapi.yaml: 202 {marked, matched}), and the
    marked user with an identity is refused from then on."""
    known, unknown = new_user(), new_user()
    assert api.token(known).status_code == 200  # has an identity; ``unknown`` never asked
    response = api.call("POST", "/api/manage/deleted-users", headers=_bearer(stack, roles=["admin"]),
                        json={"appUserIds": [known.app_user_id, unknown.app_user_id]})
    assert response.status_code == 202, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json() == {"marked": 2, "matched": 1}
    expect_error(api.token(known, fresh=True), 403, "AccountDeleted")


@pytest.fixture(scope="module")
def untrusting_api(stack: dict):
    host = FunctionHost(stack, {"TRUST_CLIENT_PRINCIPAL": "false"}, "untrusting")
    yield Api(host.base)
    host.stop()


def test_principal_header_is_ignored_where_the_platform_does_not_set_it(untrusting_api: Api, stack: dict):
    """With TRUST_CLIENT_PRINCIPAL=false the header is not read at all: alone it is no caller
    (the answer a request without it gets), and beside a bearer token it changes nothing, not
    even the admin role it claims."""
    forged = new_user(roles=("anonymous", "authenticated", "admin"))
    expect_error(untrusting_api.token(forged), 401, "MissingCaller")
    expect_error(untrusting_api.call("POST", "/api/manage/deleted-users", forged, json={"appUserIds": ["github|x"]}),
                 401, "MissingCaller")
    # a bearer token still identifies the caller there, whatever principal header comes with it
    sub = f"sub-{new_user().user_id}"
    bearer = _bearer(stack, sub=sub)
    assert untrusting_api.call("POST", "/api/token", forged, headers=bearer).status_code == 200
    seen = untrusting_api.call("GET", "/api/identity", forged, headers=bearer)
    assert seen.status_code == 200, seen.text
    assert seen.json()["appUserId"] == f"{stack['oidcIssuer']}|{sub}", seen.json()
    expect_error(untrusting_api.call("POST", "/api/manage/deleted-users", forged, headers=bearer,
                                     json={"appUserIds": ["github|x"]}), 403, "NotAdmin")
