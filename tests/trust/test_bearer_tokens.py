"""Bearer callers: only access tokens of bounded lifetime are accepted, and Microsoft Entra users
are keyed by tenant id + object id, so one person has one ACS identity across client apps."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Api, Emulator
from tests.trust.conftest import Issuer, error_code


def _refused(api: Api, emulator: Emulator, headers: dict[str, str], words: str) -> None:
    before = emulator.identities()
    response = api.call("POST", "/api/token", headers=headers)
    assert response.status_code == 401, response.text
    assert error_code(response) == "InvalidBearerToken"
    assert words in response.json()["error"]["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert emulator.identities() == before


@pytest.mark.parametrize(
    "shape, words",
    [
        # OIDC Core: an ID token carries nonce (§2) and at_hash / c_hash (§3.1.3.6, §3.3.2.11).
        ({"typ": "JWT", "claims": {"nonce": "n-0S6_WzA2Mj"}}, "ID token"),
        ({"typ": "JWT", "claims": {"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}}, "ID token"),
        ({"claims": {"c_hash": "LDktKdoQak3Pk0cnXxCltA"}}, "ID token"),
        # Its audience is the client that asked for it, and it names no other client (§2).
        ({"typ": "JWT", "clientId": None}, "names no client"),
        ({"typ": "JWT", "clientId": None, "claims": {"azp": "api://acs-token-service-local"}}, "ID token"),
        # RFC 9068 §2.1: access tokens are typed at+jwt (Entra's are plain JWT); nothing else.
        ({"typ": "id_token+jwt"}, "not an access token"),
        ({"typ": "logout+jwt"}, "not an access token"),
    ],
    ids=["nonce", "at_hash", "c_hash", "no-client", "client-is-audience", "typ-id-token", "typ-logout"],
)
def test_an_id_token_is_not_an_access_token(api: Api, emulator: Emulator, issuer: Issuer, shape: dict, words: str):
    _refused(api, emulator, issuer.headers(**shape), words)


def test_an_access_token_for_the_api_itself_with_a_scope_is_accepted(api: Api, issuer: Issuer):
    """A single-registration app (client and API are one Entra app) gets tokens whose azp is the
    audience; its delegated ``scp`` says it is an access token."""
    headers = issuer.headers(typ="JWT", clientId=None, claims={"azp": issuer.audience, "scp": "tokens.issue"})
    assert api.call("POST", "/api/token", headers=headers).status_code == 200


def test_entra_shaped_access_tokens_are_accepted(api: Api, issuer: Issuer):
    v1 = issuer.headers(typ="JWT", clientId=None, claims={"appid": str(uuid.uuid4()), "scp": "user_impersonation"})
    v2 = issuer.headers(typ="JWT", clientId=None, claims={"azp": str(uuid.uuid4()), "scp": "access"})
    assert api.call("POST", "/api/token", headers=v1).status_code == 200
    assert api.call("POST", "/api/token", headers=v2).status_code == 200


def test_a_token_valid_for_ten_years_is_refused(api: Api, emulator: Emulator, issuer: Issuer):
    _refused(api, emulator, issuer.headers(expiresInSeconds=10 * 365 * 86400), "longer than this service accepts")


def test_a_token_issued_long_ago_for_a_long_time_is_refused_even_near_its_end(api: Api, emulator: Emulator, issuer: Issuer):
    import time

    issued = int(time.time()) - 30 * 86400
    _refused(api, emulator, issuer.headers(expiresInSeconds=3600, claims={"iat": issued}), "longer than this service accepts")


def test_a_token_within_the_default_day_is_accepted(api: Api, issuer: Issuer):
    assert api.call("POST", "/api/token", headers=issuer.headers(expiresInSeconds=23 * 3600)).status_code == 200


@pytest.fixture(scope="module")
def short_lived_api(start_host) -> Api:
    api, _ = start_host({"OIDC_MAX_TOKEN_LIFETIME_MINUTES": "60"}, "short-bearer")
    return api


def test_the_maximum_lifetime_is_a_setting(short_lived_api: Api, emulator: Emulator, issuer: Issuer):
    assert short_lived_api.call("POST", "/api/token", headers=issuer.headers(expiresInSeconds=3600)).status_code == 200
    _refused(short_lived_api, emulator, issuer.headers(expiresInSeconds=3 * 3600), "longer than this service accepts")


# -- Entra: tenant id + object id -----------------------------------------------------------------

TENANT = "5b0c2e1d-3333-4c7a-8f9e-1a2b3c4d5e6f"


@pytest.fixture(scope="module")
def entra_api(start_host) -> Api:
    """The local issuer standing in for Entra: OIDC_USER_KEY=tid+oid is what OIDC_USER_KEY=auto
    chooses for an Entra issuer (login.microsoftonline.com and the national clouds)."""
    api, _ = start_host({"OIDC_USER_KEY": "tid+oid"}, "entra-key")
    return api


def test_an_entra_user_keeps_one_identity_across_client_apps(entra_api: Api, emulator: Emulator, issuer: Issuer):
    oid = str(uuid.uuid4())
    # Entra's sub is pairwise: each client app sees the same person under another sub.
    first = issuer.headers(sub="pairwise-for-app-1", clientId=str(uuid.uuid4()), claims={"tid": TENANT, "oid": oid})
    second = issuer.headers(sub="pairwise-for-app-2", clientId=str(uuid.uuid4()), claims={"tid": TENANT, "oid": oid})
    one = entra_api.call("POST", "/api/token", headers=first)
    two = entra_api.call("POST", "/api/token", headers=second)
    assert one.status_code == two.status_code == 200, (one.text, two.text)
    assert one.json()["communicationUserId"] == two.json()["communicationUserId"]
    identity = entra_api.call("GET", "/api/identity", headers=second).json()
    assert identity["appUserId"] == f"entra:{TENANT}|{oid}"


def test_the_same_object_id_in_another_tenant_is_another_user(entra_api: Api, issuer: Issuer):
    oid = str(uuid.uuid4())
    here = entra_api.call("POST", "/api/token", headers=issuer.headers(claims={"tid": TENANT, "oid": oid}))
    there = entra_api.call("POST", "/api/token", headers=issuer.headers(claims={"tid": str(uuid.uuid4()), "oid": oid}))
    assert here.json()["communicationUserId"] != there.json()["communicationUserId"]


@pytest.mark.parametrize("claims", [{"tid": TENANT}, {"oid": str(uuid.uuid4())}, {"tid": "not-a-guid", "oid": str(uuid.uuid4())}],
                         ids=["no-oid", "no-tid", "bad-tid"])
def test_an_entra_token_without_tenant_and_object_id_is_refused(entra_api: Api, emulator: Emulator, issuer: Issuer, claims: dict):
    _refused(entra_api, emulator, issuer.headers(claims=claims), "tid and oid")


def test_other_issuers_key_users_by_issuer_and_sub(api: Api, stack: dict, issuer: Issuer):
    headers = issuer.headers(sub="plain-sub", claims={"tid": TENANT, "oid": str(uuid.uuid4())})
    api.call("POST", "/api/token", headers=headers)
    assert api.call("GET", "/api/identity", headers=headers).json()["appUserId"] == f"{stack['oidcIssuer']}|plain-sub"
