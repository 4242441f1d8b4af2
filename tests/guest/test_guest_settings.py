"""The guest settings and policy, without I/O: the defaults the README quotes, settings that would
widen the guest grant refused naming the setting, and which address a request's budget is
counted against."""

from __future__ import annotations

import pytest

from shared import access_policy
from shared.caller import Caller
from shared.client_address import client_address
from shared.errors import NotFound
from shared.settings import SettingsError, load_settings

ENV = {
    "ACS_CONNECTION_STRING": "endpoint=https://acs.invalid/;accesskey=bm90LWEta2V5",
    "TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true",
}


def test_defaults_are_voip_only_and_guests_off_with_the_readme_budgets():
    settings = load_settings(ENV)
    assert settings.allowed_scopes == {"voip"} and settings.default_scopes == ("voip",)
    assert not settings.guest_access_enabled
    assert settings.guest_token_minutes == 60
    assert (settings.guest_requests_per_client_per_minute, settings.guest_requests_per_minute) == (5, 30)
    with pytest.raises(NotFound) as refused:
        access_policy.guest_request(settings)
    assert refused.value.code == "GuestAccessDisabled"


def test_the_guest_request_is_voip_join_for_60_minutes():
    settings = load_settings({**ENV, "GUEST_ACCESS_ENABLED": "true"})
    assert access_policy.guest_request(settings) == (("voip.join",), 60)


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"GUEST_TOKEN_MINUTES": "30"}, "GUEST_TOKEN_MINUTES"),
        ({"GUEST_TOKEN_MINUTES": "120"}, "GUEST_TOKEN_MINUTES"),
        ({"GUEST_REQUESTS_PER_MINUTE": "0"}, "GUEST_REQUESTS_PER_MINUTE"),
        ({"GUEST_REQUESTS_PER_CLIENT_PER_MINUTE": "0"}, "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE"),
        ({"GUEST_ACCESS_ENABLED": "maybe"}, "GUEST_ACCESS_ENABLED"),
        ({"ACS_ALLOWED_SCOPES": "voip,voip.join", "TOKEN_ROLE_POLICY": "guest:voip:60"}, "TOKEN_ROLE_POLICY"),
        ({"ACS_ALLOWED_SCOPES": "voip,voip.join", "TOKEN_ROLE_POLICY": "guest:voip.join:120"}, "TOKEN_ROLE_POLICY"),
    ],
)
def test_settings_that_would_widen_or_lift_the_guest_policy_are_refused_naming_the_setting(env: dict, setting: str):
    with pytest.raises(SettingsError, match=setting):
        load_settings({**ENV, **env})


def _caller(*roles: str) -> Caller:
    return Caller("github|someone", frozenset(roles), "client-principal", "github")


def test_a_caller_in_the_guest_role_gets_the_guest_grant_unless_another_role_is_listed():
    settings = load_settings({**ENV, "ACS_ALLOWED_SCOPES": "chat,voip"})
    assert access_policy.grant(_caller("authenticated", "guest"), settings) == access_policy.GUEST_GRANT
    assert access_policy.token_request(_caller("guest"), settings, None, None) == (("voip.join",), 60)
    assert access_policy.grant(_caller("authenticated"), settings).scopes == {"chat", "voip"}
    listed = load_settings({**ENV, "ACS_ALLOWED_SCOPES": "chat,voip", "TOKEN_ROLE_POLICY": "member:chat+voip:1440"})
    assert access_policy.grant(_caller("member", "guest"), listed).scopes == {"chat", "voip"}


@pytest.mark.parametrize(
    "headers, key",
    [
        ({"X-Forwarded-For": "203.0.113.7:52987, [fd00::1]:64909"}, "203.0.113.7"),
        ({"x-forwarded-for": "203.0.113.7"}, "203.0.113.7"),
        # What a client wrote itself comes first and is never read: the platform's entry counts.
        ({"X-Forwarded-For": "198.51.100.9, 203.0.113.7:1234, [fd00::1]:2"}, "203.0.113.7"),
        ({"X-Forwarded-For": "not an address, 203.0.113.7:1234"}, "203.0.113.7"),
        # The proxy's own address as App Service saw it is a hop, not the client.
        ({"X-Forwarded-For": "203.0.113.7:1, [fd00::1]:2, 20.50.0.7:443", "X-Client-IP": "20.50.0.7"}, "203.0.113.7"),
        ({"X-Forwarded-For": "[2001:db8:1:2:3:4:5:6]:443"}, "2001:db8:1:2::/64"),
        ({"X-Forwarded-For": "2001:db8:1:2::9, [fd00::1]:2"}, "2001:db8:1:2::/64"),
        ({"X-Forwarded-For": "::ffff:203.0.113.7"}, "203.0.113.7"),
        ({"X-Forwarded-For": "10.1.2.3:4444"}, "10.1.2.3"),
        ({"X-Forwarded-For": "10.1.2.3, 192.168.0.9"}, "10.1.2.3"),
        ({"X-Forwarded-For": "not an address"}, "unknown"),
        ({"X-Forwarded-For": "\u202e1.2.3.4"}, "unknown"),
        ({"X-Forwarded-For": "203.0.113.7, garbage"}, "unknown"),
        ({"X-Client-IP": "198.51.100.2"}, "198.51.100.2"),
        ({"client-ip": "198.51.100.2:1234"}, "198.51.100.2"),
        ({}, "unknown"),
    ],
)
def test_the_budget_is_counted_against_the_address_the_platform_appended(headers: dict, key: str):
    assert client_address(headers) == key
