"""README: "the static web app's route rules let anonymous visitors reach this route
[POST /api/guest/token] and `/api/health`, no other API route". Through the Static Web Apps CLI
(the platform's route rules as web/staticwebapp.config.json sets them): every other API route is
answered by the platform itself (its 401, which the config turns into a redirect to the sign-in
page), not by the function app's own 401 JSON, so the rule, and not only the app, stops them."""

from __future__ import annotations

import pytest
import requests

MEMBER_ROUTES = [
    ("POST", "/api/token"),
    ("GET", "/api/identity"),
    ("DELETE", "/api/identity"),
    ("POST", "/api/token/revoke"),
    ("POST", "/api/teams/token"),
    ("POST", "/api/manage/deleted-users"),
]


@pytest.mark.parametrize("method, path", MEMBER_ROUTES, ids=[f"{m} {p}" for m, p in MEMBER_ROUTES])
def test_an_anonymous_visitor_is_stopped_by_the_platform_on_every_other_api_route(stack: dict, method: str, path: str):
    response = requests.request(method, f"{stack['staticWebApp']}{path}", json={}, timeout=60, allow_redirects=False)
    assert response.status_code == 302, (response.status_code, response.text[:200])
    assert response.headers["Location"].endswith("/signin.html"), response.headers.get("Location")


def test_an_anonymous_visitor_reaches_health(stack: dict):
    response = requests.get(f"{stack['staticWebApp']}/api/health", timeout=60, allow_redirects=False)
    assert response.status_code == 200 and response.json() == {"status": "healthy"}
