"""Who may obtain ACS tokens: the access policy, enforced by the function app itself. The stack's
own host is open (any signed-in user, for the other tests); these hosts run the deployment's
closed default and each policy setting, and refused callers get no identity at ACS."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import Api, Emulator
from tests.trust.conftest import Issuer, error_code, principal

AUTHENTICATED = ["anonymous", "authenticated"]


def _refused(api: Api, emulator: Emulator, headers: dict[str, str], code: str, path: str = "/api/token") -> None:
    before = emulator.identities()
    response = api.call("POST", path, headers=headers)
    assert response.status_code == 403, response.text
    assert error_code(response) == code
    assert emulator.identities() == before, "a refused caller must not get an ACS identity"


@pytest.fixture(scope="module")
def default_api(start_host) -> Api:
    """The code's defaults for the policy (the stack's open values unset)."""
    api, _ = start_host({"ACCESS_ALLOWED_PROVIDERS": "", "ACCESS_REQUIRED_ROLES": ""}, "default-policy")
    return api


def test_by_default_signing_in_is_not_enough(default_api: Api, emulator: Emulator):
    _refused(default_api, emulator, principal("github", f"u-{uuid.uuid4().hex}", AUTHENTICATED), "RoleRequired")
    _refused(default_api, emulator, principal("aad", f"u-{uuid.uuid4().hex}", AUTHENTICATED), "RoleRequired")


def test_by_default_the_refusal_explains_itself_to_the_person(default_api: Api):
    response = default_api.call("POST", "/api/token", headers=principal("github", "someone", AUTHENTICATED))
    assert "invite" in response.json()["error"]["message"]


def test_by_default_an_invited_member_gets_a_token(default_api: Api, emulator: Emulator):
    response = default_api.call("POST", "/api/token", headers=principal("github", f"u-{uuid.uuid4().hex}", [*AUTHENTICATED, "member"]))
    assert response.status_code == 200, response.text
    assert emulator.verify(response.json()["token"])["valid"]


def test_by_default_other_providers_are_refused_even_with_the_role(default_api: Api, emulator: Emulator):
    _refused(default_api, emulator, principal("twitter", f"u-{uuid.uuid4().hex}", [*AUTHENTICATED, "member"]), "ProviderNotAllowed")


def test_by_default_a_bearer_caller_needs_the_role_too(default_api: Api, emulator: Emulator, issuer: Issuer):
    _refused(default_api, emulator, issuer.headers(), "RoleRequired")
    assert default_api.call("POST", "/api/token", headers=issuer.headers(roles=["member"])).status_code == 200


def test_teams_exchange_is_refused_to_callers_the_policy_refuses(default_api: Api, emulator: Emulator):
    # This host keeps the stack's TEAMS_EXCHANGE_ENABLED=true; the policy still comes first.
    _refused(default_api, emulator, principal("github", "someone", AUTHENTICATED), "RoleRequired", "/api/teams/token")


def test_a_refused_caller_may_still_see_revoke_and_delete_their_own_identity(default_api: Api):
    headers = principal("github", f"u-{uuid.uuid4().hex}", AUTHENTICATED)
    assert default_api.call("GET", "/api/identity", headers=headers).status_code == 404
    assert default_api.call("POST", "/api/token/revoke", headers=headers).status_code == 204
    assert default_api.call("DELETE", "/api/identity", headers=headers).status_code == 204


@pytest.fixture(scope="module")
def roles_api(start_host) -> Api:
    api, _ = start_host({"ACCESS_ALLOWED_PROVIDERS": "aad", "ACCESS_REQUIRED_ROLES": "staff,partner"}, "roles-policy")
    return api


def test_any_one_of_the_required_roles_admits(roles_api: Api):
    for role in ("staff", "partner"):
        response = roles_api.call("POST", "/api/token", headers=principal("aad", f"u-{uuid.uuid4().hex}", [*AUTHENTICATED, role]))
        assert response.status_code == 200, response.text


def test_only_the_listed_providers_are_admitted(roles_api: Api, emulator: Emulator):
    _refused(roles_api, emulator, principal("github", f"u-{uuid.uuid4().hex}", [*AUTHENTICATED, "staff"]), "ProviderNotAllowed")


def test_role_names_are_matched_exactly(roles_api: Api, emulator: Emulator):
    for look_alike in ("Staff", "staff ", "staffs", "member"):
        _refused(roles_api, emulator, principal("aad", f"u-{uuid.uuid4().hex}", [*AUTHENTICATED, look_alike]), "RoleRequired")


def test_any_signed_in_user_is_an_explicit_setting(api: Api, issuer: Issuer):
    """The local stack says ACCESS_REQUIRED_ROLES=* and ACCESS_ALLOWED_PROVIDERS=*."""
    assert api.call("POST", "/api/token", headers=principal("twitter", f"u-{uuid.uuid4().hex}", AUTHENTICATED)).status_code == 200
    assert api.call("POST", "/api/token", headers=issuer.headers()).status_code == 200


TENANT = "3f1c9e5a-1111-4a6b-9c1d-5e2f3a4b5c6d"
OTHER_TENANT = "9a8b7c6d-2222-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.fixture(scope="module")
def organisation_api(start_host) -> Api:
    api, _ = start_host(
        {"ACCESS_REQUIRED_ROLES": "*", "ACCESS_ALLOWED_TENANT_IDS": TENANT, "ACCESS_ALLOWED_EMAIL_DOMAINS": "contoso.example"},
        "organisation-policy",
    )
    return api


def test_bearer_caller_of_the_allowed_tenant_and_domain_is_admitted(organisation_api: Api, issuer: Issuer):
    headers = issuer.headers(claims={"tid": TENANT, "email": "ada@contoso.example"})
    assert organisation_api.call("POST", "/api/token", headers=headers).status_code == 200


def test_email_domain_is_matched_without_regard_to_case(organisation_api: Api, issuer: Issuer):
    """(The stack's issuer is not Microsoft Entra, so only its ``email`` claim is an address:
    tests/attacks/test_bearer_claims.py.)"""
    headers = issuer.headers(claims={"tid": TENANT, "email": "Ada@Contoso.Example"})
    assert organisation_api.call("POST", "/api/token", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "claims, code",
    [
        ({"tid": OTHER_TENANT, "email": "ada@contoso.example"}, "TenantNotAllowed"),
        ({"email": "ada@contoso.example"}, "TenantNotAllowed"),
        ({"tid": TENANT, "email": "ada@fabrikam.example"}, "EmailDomainNotAllowed"),
        ({"tid": TENANT, "email": "ada@evil.contoso.example"}, "EmailDomainNotAllowed"),
        ({"tid": TENANT, "email": "ada@contoso.example", "email_verified": False}, "EmailDomainNotAllowed"),
        ({"tid": TENANT}, "EmailDomainNotAllowed"),
    ],
    ids=["other-tenant", "no-tenant", "other-domain", "subdomain", "unverified-email", "no-email"],
)
def test_bearer_caller_outside_the_tenant_or_domain_is_refused(organisation_api: Api, emulator: Emulator, issuer: Issuer,
                                                                claims: dict, code: str):
    _refused(organisation_api, emulator, issuer.headers(claims=claims), code)


# -- scopes and lifetime per role -------------------------------------------------------------

@pytest.fixture(scope="module")
def role_scopes_api(start_host) -> Api:
    api, _ = start_host(
        {
            "ACCESS_REQUIRED_ROLES": "member,guest",
            "ACS_ALLOWED_SCOPES": "chat,voip,voip.join",
            "ACS_DEFAULT_SCOPES": "chat,voip",
            "TOKEN_ROLE_POLICY": "member:chat+voip:1440;guest:voip.join:60",
        },
        "role-scopes",
    )
    return api


def _guest() -> dict[str, str]:
    return principal("github", f"guest-{uuid.uuid4().hex}", [*AUTHENTICATED, "guest"])


def _expires_within(response, minutes: int) -> bool:
    expires = datetime.fromisoformat(response.json()["expiresOn"].replace("Z", "+00:00"))
    return expires <= datetime.now(timezone.utc) + timedelta(minutes=minutes, seconds=30)


def test_guest_gets_only_the_guest_scopes_and_lifetime_by_default(role_scopes_api: Api, emulator: Emulator):
    response = role_scopes_api.call("POST", "/api/token", headers=_guest())
    assert response.status_code == 200, response.text
    verified = emulator.verify(response.json()["token"])
    assert verified["valid"]
    assert sorted(verified["scopes"]) == ["voip.join"]
    assert _expires_within(response, 60)


@pytest.mark.parametrize(
    "body, code",
    [
        ({"scopes": ["chat"]}, "ScopeNotAllowed"),
        ({"scopes": ["voip.join", "voip"]}, "ScopeNotAllowed"),
        ({"expiresInMinutes": 61}, "LifetimeNotAllowed"),
        ({"scopes": ["voip.join"], "expiresInMinutes": 1440}, "LifetimeNotAllowed"),
    ],
)
def test_guest_asking_for_more_than_the_role_allows_is_refused(role_scopes_api: Api, emulator: Emulator, body: dict, code: str):
    before = emulator.identities()
    response = role_scopes_api.call("POST", "/api/token", headers=_guest(), json=body)
    assert response.status_code == 403, response.text
    assert error_code(response) == code
    assert emulator.identities() == before


def test_member_gets_chat_and_voip_for_up_to_a_day(role_scopes_api: Api, emulator: Emulator):
    headers = principal("github", f"m-{uuid.uuid4().hex}", [*AUTHENTICATED, "member"])
    response = role_scopes_api.call("POST", "/api/token", headers=headers, json={"scopes": ["chat", "voip"], "expiresInMinutes": 1440})
    assert response.status_code == 200, response.text
    assert sorted(emulator.verify(response.json()["token"])["scopes"]) == ["chat", "voip"]
    assert not _expires_within(response, 1380)
    assert role_scopes_api.call("POST", "/api/token", headers=headers, json={"scopes": ["voip.join"]}).status_code == 403


def test_a_caller_with_both_roles_gets_the_union(role_scopes_api: Api):
    headers = principal("github", f"mg-{uuid.uuid4().hex}", [*AUTHENTICATED, "member", "guest"])
    response = role_scopes_api.call("POST", "/api/token", headers=headers, json={"scopes": ["chat", "voip.join"], "expiresInMinutes": 600})
    assert response.status_code == 200, response.text


def test_a_scope_outside_the_allowed_scopes_is_still_a_malformed_request(role_scopes_api: Api):
    response = role_scopes_api.call("POST", "/api/token", headers=_guest(), json={"scopes": ["chat.join"]})
    assert response.status_code == 400
    assert error_code(response) == "InvalidScope"
