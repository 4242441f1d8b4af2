"""Every route that changes state or costs an ACS call has a per-user limit, and every limit
answers 429 with Retry-After (limits are per instance: see the README's "Abuse limits")."""

from __future__ import annotations

from typing import Callable

import pytest
import requests

from tests.conftest import Api, Emulator, new_user
from tests.trust.conftest import error_code

ADMIN = ("anonymous", "authenticated", "admin")


@pytest.fixture(scope="module")
def strict_api(start_host) -> Api:
    api, _ = start_host(
        {"TOKEN_REQUESTS_PER_MINUTE": "2", "IDENTITY_CHANGES_PER_MINUTE": "2", "MANAGE_REQUESTS_PER_MINUTE": "2",
         "IDENTITY_CREATIONS_PER_USER_PER_DAY": "2"},
        "strict-limits",
    )
    return api


def _throttled(response: requests.Response, code: str = "TooManyRequests") -> None:
    assert response.status_code == 429, response.text
    assert error_code(response) == code
    assert int(response.headers["Retry-After"]) >= 1


ROUTES: dict[str, Callable[[Api, object], requests.Response]] = {
    "token": lambda api, user: api.token(user, fresh=True),
    "revoke": lambda api, user: api.call("POST", "/api/token/revoke", user),
    "delete-identity": lambda api, user: api.call("DELETE", "/api/identity", user),
    "manage": lambda api, user: api.call("POST", "/api/manage/deleted-users", user,
                                         json={"appUserIds": [new_user().app_user_id]}),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_every_state_changing_route_throttles_past_its_limit(strict_api: Api, route: str):
    send = ROUTES[route]
    user = new_user(ADMIN)
    first, second = send(strict_api, user), send(strict_api, user)
    assert first.status_code < 300 and second.status_code < 300, (first.text, second.text)
    _throttled(send(strict_api, user))
    other = send(strict_api, new_user(ADMIN))
    assert other.status_code < 300, "another user must not be throttled"


def test_revoke_and_delete_share_one_budget(strict_api: Api):
    user = new_user()
    assert strict_api.call("POST", "/api/token/revoke", user).status_code == 204
    assert strict_api.call("DELETE", "/api/identity", user).status_code == 204
    _throttled(strict_api.call("POST", "/api/token/revoke", user))
    _throttled(strict_api.call("DELETE", "/api/identity", user))


@pytest.fixture(scope="module")
def creation_budget_api(start_host) -> Api:
    api, _ = start_host({"IDENTITY_CREATIONS_PER_USER_PER_DAY": "2", "IDENTITY_CHANGES_PER_MINUTE": "100"}, "creation-budget")
    return api


def test_a_delete_and_create_loop_stops_at_the_daily_creation_budget(creation_budget_api: Api, emulator: Emulator):
    user = new_user()
    created = set()
    for _ in range(2):
        response = creation_budget_api.token(user)
        assert response.status_code == 200, response.text
        created.add(response.json()["communicationUserId"])
        assert creation_budget_api.call("DELETE", "/api/identity", user).status_code == 204
    before = emulator.identities()
    _throttled(creation_budget_api.token(user), "TooManyIdentityCreations")
    assert emulator.identities() == before, "no identity is created past the budget"
    assert len(created) == 2
