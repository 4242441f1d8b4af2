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


#: README, "Security headers (`globalHeaders`)": the headers every page gets, and what the policy holds.
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
                    "Permissions-Policy", "Cross-Origin-Opener-Policy", "Strict-Transport-Security")
CSP_DIRECTIVES = {"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'",
                  "frame-ancestors": "'none'"}


@pytest.mark.parametrize("page", ["/signin.html", "/guest.html"])
def test_every_page_is_served_with_the_readmes_security_headers(stack: dict, page: str):
    """Through the Static Web Apps CLI, from web/staticwebapp.config.json's globalHeaders (the
    CLI adds some of these on its own, so each value is also checked against the README's)."""
    import json
    from pathlib import Path

    config = json.loads((Path(__file__).resolve().parents[2] / "web" / "staticwebapp.config.json").read_text())
    declared = config["globalHeaders"]
    response = requests.get(f"{stack['staticWebApp']}{page}", timeout=60, allow_redirects=False)
    assert response.status_code == 200
    for name in SECURITY_HEADERS:
        assert name in declared, f"globalHeaders lacks {name}"
        assert response.headers.get(name) == declared[name], (name, response.headers.get(name))
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert {k: policy.get(k) for k in CSP_DIRECTIVES} == CSP_DIRECTIVES, policy
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert (response.headers["X-Content-Type-Options"], response.headers["X-Frame-Options"],
            response.headers["Referrer-Policy"]) == ("nosniff", "DENY", "no-referrer")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_api_answers_through_the_platform_carry_no_store(stack: dict):
    """README: "The `/api/*` routes carry `Cache-Control: no-store`" (the route rules set it, and
    the service sets it on its own answers)."""
    import json
    from pathlib import Path

    config = json.loads((Path(__file__).resolve().parents[2] / "web" / "staticwebapp.config.json").read_text())
    for route in config["routes"]:
        if route["route"].startswith("/api/") and route["route"] != "/api/health":
            assert route.get("headers", {}).get("Cache-Control") == "no-store", route
    health = requests.get(f"{stack['staticWebApp']}/api/health", timeout=60, allow_redirects=False)
    assert health.status_code == 200 and health.headers["Cache-Control"] == "no-store"
    guest = requests.post(f"{stack['staticWebApp']}/api/guest/token", json={"displayName": "<b>x</b>"}, timeout=60,
                          allow_redirects=False)
    assert guest.status_code == 400 and guest.headers["Cache-Control"] == "no-store", (guest.status_code, guest.headers)
