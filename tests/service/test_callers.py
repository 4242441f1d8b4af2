"""Who the caller is, seen through the function host: OIDC bearer tokens from the stack's local
issuer, and the principal header trusted only where the settings say the platform sets it."""

from __future__ import annotations

import requests
import pytest

from tests.conftest import Api, Emulator, FunctionHost, new_user


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
    response = api.call("POST", "/api/manage/deleted-users", headers=_bearer(stack, roles=["admin"]),
                        json={"appUserIds": [new_user().app_user_id]})
    assert response.status_code == 202


@pytest.fixture(scope="module")
def untrusting_api(stack: dict):
    host = FunctionHost(stack, {"TRUST_CLIENT_PRINCIPAL": "false"}, "untrusting")
    yield Api(host.base)
    host.stop()


def test_principal_header_is_ignored_where_the_platform_does_not_set_it(untrusting_api: Api, stack: dict):
    forged = new_user(roles=("anonymous", "authenticated", "admin"))
    assert untrusting_api.token(forged).status_code == 401
    assert untrusting_api.call("POST", "/api/manage/deleted-users", forged, json={"appUserIds": ["x"]}).status_code == 401
    # a bearer token still identifies the caller there
    assert untrusting_api.call("POST", "/api/token", headers=_bearer(stack)).status_code == 200
