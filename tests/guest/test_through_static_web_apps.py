"""Through the Static Web Apps CLI (the platform's route rules, as staticwebapp.config.json sets
them): a visitor who is not signed in reaches POST /api/guest/token, and only that API route."""

from __future__ import annotations

import requests

from tests.conftest import record_secrets
from tests.guest.conftest import remember


def test_an_anonymous_visitor_reaches_the_guest_route_and_no_other_api_route(stack: dict):
    base = stack["staticWebApp"]
    response = requests.post(f"{base}/api/guest/token", json={"displayName": "Visitor"}, timeout=60, allow_redirects=False)
    record_secrets({}, response)
    remember(response)
    assert response.status_code == 200, response.text
    assert response.json()["scopes"] == ["voip.join"]
    assert response.headers.get("Cache-Control") == "no-store"
    token = requests.post(f"{base}/api/token", timeout=60, allow_redirects=False)
    assert token.status_code in (302, 401), "the member route still needs a signed-in user"
