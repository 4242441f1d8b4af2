"""The principal header is believed only when TRUST_CLIENT_PRINCIPAL is on AND App Service says
its authentication is enabled for the app (WEBSITE_AUTH_ENABLED). Without that signal the
platform does not strip client-sent principal headers, so anyone could claim to be anyone."""

from __future__ import annotations

import pytest

from tests.conftest import Api, Emulator, FunctionHost, new_user
from tests.trust.conftest import Issuer, error_code, principal

FORGED_ADMIN = principal("github", "victim", ["anonymous", "authenticated", "admin"])


@pytest.fixture(scope="module")
def unprotected(start_host) -> tuple[Api, FunctionHost]:
    """TRUST_CLIENT_PRINCIPAL=true (from the stack's settings) but no platform signal."""
    return start_host({"WEBSITE_AUTH_ENABLED": ""}, "no-platform-auth")


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/api/token", None),
        ("GET", "/api/identity", None),
        ("POST", "/api/token/revoke", None),
        ("DELETE", "/api/identity", None),
        ("POST", "/api/manage/deleted-users", {"appUserIds": ["github|someone"]}),
    ],
)
def test_forged_principal_is_refused_when_app_service_authentication_is_off(
    unprotected, emulator: Emulator, method: str, path: str, body
):
    api, _ = unprotected
    before = emulator.identities()
    response = api.call(method, path, headers=FORGED_ADMIN, json=body)
    assert response.status_code == 401
    assert error_code(response) == "PlatformAuthenticationOff"
    assert "WEBSITE_AUTH_ENABLED" in response.json()["error"]["message"]
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert emulator.identities() == before


def test_health_names_the_reason_when_app_service_authentication_is_off(unprotected):
    api, _ = unprotected
    response = api.call("GET", "/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["error"]["code"] == "PlatformAuthenticationOff"
    assert "WEBSITE_AUTH_ENABLED" in body["error"]["message"]
    assert int(response.headers["Retry-After"]) >= 1


def test_startup_logs_one_error_line_naming_the_missing_signal(unprotected):
    api, host = unprotected
    api.call("POST", "/api/token", headers=FORGED_ADMIN)  # refusals add no line of their own
    lines = [line for line in host.log.read_text(errors="replace").splitlines() if "WEBSITE_AUTH_ENABLED" in line]
    assert len(lines) == 1, lines
    assert "TRUST_CLIENT_PRINCIPAL" in lines[0]


def test_bearer_callers_are_served_without_the_signal(unprotected, issuer: Issuer):
    api, _ = unprotected
    response = api.call("POST", "/api/token", headers=issuer.headers())
    assert response.status_code == 200, response.text


def test_principal_is_believed_where_the_platform_signal_is_present(api: Api):
    """The local stack's host presents WEBSITE_AUTH_ENABLED=True, as App Service does with
    authentication on (and the SWA CLI in front plays the platform)."""
    user = new_user()
    assert api.token(user).status_code == 200
    assert api.call("GET", "/api/identity", user).json()["appUserId"] == user.app_user_id
    assert api.call("GET", "/api/health").status_code == 200
