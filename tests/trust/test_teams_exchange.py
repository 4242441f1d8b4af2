"""The Teams token exchange is off by default; when on, only allow-listed Entra apps and tenants
are exchanged, an Entra caller may only exchange their own Teams token, and every exchange counts
against the caller's token limit."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Api, new_user
from tests.trust.conftest import LOCAL_TEAMS_TENANT, Issuer, error_code, principal, teams_token

APP = "0d8f5e2a-4444-4b1c-9d2e-3f4a5b6c7d8e"
STRANGER_APP = "7e6d5c4b-5555-4a3b-8c2d-1e0f9a8b7c6d"


def _exchange(api: Api, stack: dict, headers: dict[str, str], *, oid: str | None = None, app_id: str = APP):
    oid = oid or str(uuid.uuid4())
    body = {"teamsToken": teams_token(stack, oid, app_id), "appId": app_id, "userId": oid}
    return api.call("POST", "/api/teams/token", headers=headers, json=body)


@pytest.fixture(scope="module")
def default_api(start_host) -> Api:
    api, _ = start_host({"TEAMS_EXCHANGE_ENABLED": "", "TEAMS_ALLOWED_APP_IDS": "", "TEAMS_ALLOWED_TENANT_IDS": ""}, "teams-default")
    return api


def test_the_exchange_is_off_by_default(default_api: Api, stack: dict):
    response = _exchange(default_api, stack, new_user().headers)
    assert response.status_code == 403
    assert error_code(response) == "TeamsExchangeDisabled"


@pytest.fixture(scope="module")
def listed_api(start_host) -> Api:
    api, _ = start_host({"TEAMS_ALLOWED_APP_IDS": APP, "TEAMS_ALLOWED_TENANT_IDS": LOCAL_TEAMS_TENANT}, "teams-listed")
    return api


def test_an_allow_listed_app_and_tenant_is_exchanged(listed_api: Api, stack: dict):
    response = _exchange(listed_api, stack, new_user().headers)
    assert response.status_code == 200, response.text
    assert response.json()["token"]


def test_another_app_is_refused(listed_api: Api, stack: dict):
    response = _exchange(listed_api, stack, new_user().headers, app_id=STRANGER_APP)
    assert response.status_code == 403
    assert error_code(response) == "TeamsAppNotAllowed"


@pytest.fixture(scope="module")
def other_tenant_api(start_host) -> Api:
    api, _ = start_host({"TEAMS_ALLOWED_APP_IDS": APP, "TEAMS_ALLOWED_TENANT_IDS": str(uuid.uuid4())}, "teams-other-tenant")
    return api


def test_another_tenant_is_refused(other_tenant_api: Api, stack: dict):
    response = _exchange(other_tenant_api, stack, new_user().headers)
    assert response.status_code == 403
    assert error_code(response) == "TeamsTenantNotAllowed"


@pytest.mark.parametrize("field, value", [("appId", "not-a-guid"), ("userId", "x" * 40), ("teamsToken", "not a jwt")])
def test_fields_that_cannot_be_entra_ids_or_a_jwt_are_malformed(listed_api: Api, stack: dict, field: str, value: str):
    oid = str(uuid.uuid4())
    body = {"teamsToken": teams_token(stack, oid, APP), "appId": APP, "userId": oid, field: value}
    response = listed_api.call("POST", "/api/teams/token", new_user(), json=body)
    assert response.status_code == 400
    assert error_code(response) in {"InvalidField", "InvalidTeamsToken"}


# -- an Entra caller exchanges only their own Teams token ------------------------------------------

@pytest.fixture(scope="module")
def entra_api(start_host) -> Api:
    api, _ = start_host({"OIDC_USER_KEY": "tid+oid", "TEAMS_ALLOWED_APP_IDS": APP,
                         "TEAMS_ALLOWED_TENANT_IDS": LOCAL_TEAMS_TENANT}, "teams-entra")
    return api


def test_an_entra_caller_exchanges_their_own_teams_token(entra_api: Api, stack: dict, issuer: Issuer):
    oid = str(uuid.uuid4())
    caller = issuer.headers(claims={"tid": LOCAL_TEAMS_TENANT, "oid": oid})
    assert _exchange(entra_api, stack, caller, oid=oid).status_code == 200


def test_an_entra_caller_cannot_exchange_someone_elses_teams_token(entra_api: Api, stack: dict, issuer: Issuer):
    caller = issuer.headers(claims={"tid": LOCAL_TEAMS_TENANT, "oid": str(uuid.uuid4())})
    response = _exchange(entra_api, stack, caller, oid=str(uuid.uuid4()))
    assert response.status_code == 403
    assert error_code(response) == "TeamsUserMismatch"
    assert "token" not in response.json()


def test_an_entra_user_of_another_tenant_cannot_exchange_a_same_oid_token(entra_api: Api, stack: dict, issuer: Issuer):
    oid = str(uuid.uuid4())
    caller = issuer.headers(claims={"tid": str(uuid.uuid4()), "oid": oid})
    response = _exchange(entra_api, stack, caller, oid=oid)
    assert response.status_code == 403
    assert error_code(response) == "TeamsUserMismatch"


def test_a_static_web_apps_microsoft_user_cannot_be_matched_so_is_refused(entra_api: Api, stack: dict):
    """Static Web Apps' principal does not carry the Entra object id: no way to tell whose it is."""
    response = _exchange(entra_api, stack, principal("aad", f"u-{uuid.uuid4().hex}", ["authenticated"]))
    assert response.status_code == 403
    assert error_code(response) == "TeamsUserMismatch"


def test_a_non_entra_caller_may_exchange_an_allow_listed_token(entra_api: Api, stack: dict):
    assert _exchange(entra_api, stack, new_user().headers).status_code == 200


# -- it counts against the caller's limit -------------------------------------------------------

@pytest.fixture(scope="module")
def limited_api(start_host) -> Api:
    api, _ = start_host({"TOKEN_REQUESTS_PER_MINUTE": "2"}, "teams-limit")
    return api


def test_exchanges_count_against_the_callers_token_limit(limited_api: Api, stack: dict):
    user = new_user()
    assert limited_api.token(user).status_code == 200
    assert _exchange(limited_api, stack, user.headers).status_code == 200
    throttled = _exchange(limited_api, stack, user.headers)
    assert throttled.status_code == 429
    assert error_code(throttled) == "TooManyRequests"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert limited_api.token(user).status_code == 429
