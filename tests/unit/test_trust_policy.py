"""The trust boundary's pure parts: settings that cannot work are refused naming the setting, the
app user id shape, and the access policy's decisions (no I/O: these run on every token request)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import access_policy
from shared.caller import Caller, is_app_user_id
from shared.errors import Forbidden, InvalidRequest
from shared.settings import SettingsError, function_timeout_seconds


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"DEPENDENCY_TIMEOUT_SECONDS": "6"}, "DEPENDENCY_TIMEOUT_SECONDS"),
        ({"REQUEST_DEADLINE_SECONDS": "45"}, "REQUEST_DEADLINE_SECONDS"),
        ({"CLEANUP_TIME_BUDGET_SECONDS": "300"}, "CLEANUP_TIME_BUDGET_SECONDS"),
        ({"TEAMS_EXCHANGE_ENABLED": "true", "TEAMS_ALLOWED_APP_IDS": "*"}, "TEAMS_ALLOWED_TENANT_IDS"),
        ({"TEAMS_ALLOWED_APP_IDS": "my-app"}, "TEAMS_ALLOWED_APP_IDS"),
        ({"ACCESS_ALLOWED_TENANT_IDS": "contoso"}, "ACCESS_ALLOWED_TENANT_IDS"),
        ({"ACCESS_ALLOWED_EMAIL_DOMAINS": "@contoso.com"}, "ACCESS_ALLOWED_EMAIL_DOMAINS"),
        ({"ACCESS_REQUIRED_ROLES": "member, *"}, "ACCESS_REQUIRED_ROLES"),
        ({"ACCESS_ALLOWED_PROVIDERS": "git|hub"}, "ACCESS_ALLOWED_PROVIDERS"),
        ({"TOKEN_ROLE_POLICY": "guest:voip.join:60"}, "TOKEN_ROLE_POLICY"),
        ({"TOKEN_ROLE_POLICY": "guest:chat:30"}, "TOKEN_ROLE_POLICY"),
        ({"TOKEN_ROLE_POLICY": "guest=chat"}, "TOKEN_ROLE_POLICY"),
        ({"TOKEN_ROLE_POLICY": "a:chat:60;a:voip:60"}, "TOKEN_ROLE_POLICY"),
        ({"OIDC_USER_KEY": "email"}, "OIDC_USER_KEY"),
        ({"OIDC_MAX_TOKEN_LIFETIME_MINUTES": "525600"}, "OIDC_MAX_TOKEN_LIFETIME_MINUTES"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_setting(make_settings, env: dict, setting: str):
    with pytest.raises(SettingsError, match=setting):
        make_settings(**env)


def test_defaults_are_closed(make_settings):
    settings = make_settings()
    assert settings.access_required_roles == {"member"}
    assert settings.access_allowed_providers == {"aad", "github"}
    assert not settings.teams_exchange_enabled
    assert settings.request_deadline_seconds == 25 and settings.dependency_timeout_seconds == 5
    assert settings.oidc_max_token_lifetime_minutes == 1440


def test_the_platform_signal_is_read_as_app_service_writes_it(make_settings):
    assert make_settings(WEBSITE_AUTH_ENABLED="True").platform_auth_enabled
    assert not make_settings(WEBSITE_AUTH_ENABLED="False").platform_auth_enabled
    assert not make_settings(WEBSITE_AUTH_ENABLED="").platform_auth_enabled


def test_function_timeout_comes_from_host_json_or_its_override(tmp_path: Path):
    host = tmp_path / "host.json"
    host.write_text('{"version": "2.0", "functionTimeout": "00:10:00"}')
    assert function_timeout_seconds({}, host) == 600
    assert function_timeout_seconds({"AzureFunctionsJobHost__functionTimeout": "01:00:00"}, host) == 3600
    assert function_timeout_seconds({"AzureFunctionsJobHost__functionTimeout": "-1"}, host) is None
    host.write_text('{"version": "2.0"}')
    assert function_timeout_seconds({}, host) is None


@pytest.mark.parametrize("value", ["github|a", "aad|0f-0e", "https://login.example|sub", "entra:5b0c2e1d-3333-4c7a-8f9e-1a2b3c4d5e6f|x"])
def test_ids_of_every_shape_the_service_makes_are_app_user_ids(value: str):
    assert is_app_user_id(value)


@pytest.mark.parametrize(
    "value",
    ["", "github", "github|", "|x", "GitHub|x", "github|\ud800", "github|a\u202eb", "github|a\x00", "github| ", 7, None,
     "entra:nope|x", "github|" + "u" * 513],
)
def test_anything_else_is_not(value):
    assert not is_app_user_id(value)


def _caller(*roles: str, source: str = "client-principal", provider: str = "github", **extra) -> Caller:
    return Caller(app_user_id=f"{provider}|u", roles=frozenset(roles), source=source, provider=provider, **extra)


def test_policy_refusals_name_their_rule(make_settings):
    settings = make_settings(ACCESS_ALLOWED_TENANT_IDS="5b0c2e1d-3333-4c7a-8f9e-1a2b3c4d5e6f")
    with pytest.raises(Forbidden) as refused:
        access_policy.admit(_caller("authenticated"), settings)
    assert refused.value.code == "RoleRequired"
    with pytest.raises(Forbidden) as refused:
        access_policy.admit(_caller("member", provider="twitter"), settings)
    assert refused.value.code == "ProviderNotAllowed"
    with pytest.raises(Forbidden) as refused:
        access_policy.admit(_caller("member", source="bearer", provider="https://issuer"), settings)
    assert refused.value.code == "TenantNotAllowed"
    access_policy.admit(_caller("member"), settings)


def test_role_grants_combine_and_bound_the_request(make_settings):
    settings = make_settings(ACS_ALLOWED_SCOPES="chat,voip,voip.join", TOKEN_ROLE_POLICY="member:chat+voip:1440;guest:voip.join:60")
    assert access_policy.token_request(_caller("guest"), settings, None, None) == (("voip.join",), 60)
    assert access_policy.token_request(_caller("member", "guest"), settings, ["voip.join", "chat"], 600) == (("chat", "voip.join"), 600)
    with pytest.raises(Forbidden):
        access_policy.token_request(_caller("guest"), settings, ["voip"], None)
    with pytest.raises(InvalidRequest):
        access_policy.token_request(_caller("guest"), settings, ["chat.join"], None)
    # No listed role: the deployment's allowed scopes, up to a day.
    assert access_policy.token_request(_caller("authenticated"), settings, ["voip.join"], 1440) == (("voip.join",), 1440)


def _teams_token_of(tenant: str, oid: str) -> str:
    import base64
    import json

    def part(document: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'tid': tenant, 'oid': oid})}.c2ln"


@pytest.mark.parametrize("provider, tenant_and_object, held", [
    ("https://sts.chinacloudapi.cn/72f988bf-0000-4000-8000-00000000d0c1/", False, True),
    ("https://contoso.ciamlogin.com/72f988bf-0000-4000-8000-00000000d0c1/v2.0", True, True),
    ("https://issuer.example", True, True),
    ("https://issuer.example", False, False),
], ids=["entra-issuer-without-claims", "tid-and-oid-of-an-external-id-issuer", "tid-and-oid-of-any-issuer",
        "another-issuer-without-them"])
def test_a_bearer_caller_who_names_an_entra_user_exchanges_only_that_users_teams_token(
        make_settings, provider: str, tenant_and_object: bool, held: bool):
    """Whether the caller is held to their own Teams user does not hang on the OIDC_USER_KEY
    prefix; an Entra-issuer caller without tid/oid is refused (nothing to match them with)."""
    settings = make_settings(TEAMS_EXCHANGE_ENABLED="true", TEAMS_ALLOWED_APP_IDS="*", TEAMS_ALLOWED_TENANT_IDS="*",
                             OIDC_USER_KEY="sub")
    tenant, mine, theirs = "72f988bf-0000-4000-8000-00000000d0c1", "11111111-2222-4333-8444-555555555555", \
        "99999999-2222-4333-8444-555555555555"
    caller = Caller(app_user_id=f"{provider}|sub-1", roles=frozenset(), source="bearer", provider=provider,
                    tenant_id=tenant if tenant_and_object else None, object_id=mine if tenant_and_object else None)
    app = "0d8f5e2a-4444-4b1c-9d2e-3f4a5b6c7d8e"
    if held:
        with pytest.raises(Forbidden) as refused:
            access_policy.check_teams_exchange(caller, settings, _teams_token_of(tenant, theirs), app, theirs)
        assert refused.value.code == "TeamsUserMismatch"
    else:
        access_policy.check_teams_exchange(caller, settings, _teams_token_of(tenant, theirs), app, theirs)
    if tenant_and_object:
        access_policy.check_teams_exchange(caller, settings, _teams_token_of(tenant, mine), app, mine)
