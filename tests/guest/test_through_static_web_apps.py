"""Through the Static Web Apps CLI (the platform's route rules, as staticwebapp.config.json sets
them): a visitor who is not signed in reaches POST /api/guest/token, and only that API route."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from tests.conftest import record_secrets
from tests.guest.conftest import remember

SWA_CONFIG = Path(__file__).resolve().parents[2] / "web" / "staticwebapp.config.json"


def _platform_refusal() -> tuple[int, str]:
    """What the platform answers a visitor its route rules stop: its 401, which the config's
    responseOverrides turn into a redirect (status and target read from the config)."""
    override = json.loads(SWA_CONFIG.read_text(encoding="utf-8"))["responseOverrides"]["401"]
    return override.get("statusCode", 302), override["redirect"]


def test_an_anonymous_visitor_reaches_the_guest_route_and_no_other_api_route(stack: dict):
    base = stack["staticWebApp"]
    response = requests.post(f"{base}/api/guest/token", json={"displayName": "Visitor"}, timeout=60, allow_redirects=False)
    record_secrets({}, response)
    remember(response)
    assert response.status_code == 200, response.text
    assert response.json()["scopes"] == ["voip.join"]
    assert response.headers.get("Cache-Control") == "no-store"
    token = requests.post(f"{base}/api/token", timeout=60, allow_redirects=False)
    # The platform's redirect, not the function app's own 401 JSON: the route rule stops the
    # visitor before the app is reached.
    status, target = _platform_refusal()
    assert token.status_code == status, (token.status_code, token.text[:200])
    assert token.headers["Location"].endswith(target), token.headers.get("Location")
