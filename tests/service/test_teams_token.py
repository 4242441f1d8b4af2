"""POST /api/teams/token: a Teams user's Entra token exchanged for an ACS token."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conftest import Api, new_user


def _entra_token(stack: dict, oid: str, app_id: str, lifetime: int = 3600) -> str:
    base = stack["identityEndpoint"].rsplit("/msi/", 1)[0]
    response = requests.post(f"{base}/_local/entra-user-token", json={"oid": oid, "appId": app_id, "expiresInSeconds": lifetime},
                             timeout=10)
    return response.json()["token"]


def test_teams_user_token_is_exchanged(api: Api, stack: dict):
    oid, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    response = api.call("POST", "/api/teams/token", new_user(),
                        json={"teamsToken": _entra_token(stack, oid, app_id), "appId": app_id, "userId": oid})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] and body["expiresOn"].endswith("Z")
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("mismatch", ["userId", "appId"])
def test_teams_token_for_another_user_or_app_is_rejected(api: Api, stack: dict, mismatch: str):
    oid, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"teamsToken": _entra_token(stack, oid, app_id), "appId": app_id, "userId": oid}
    body[mismatch] = str(uuid.uuid4())
    response = api.call("POST", "/api/teams/token", new_user(), json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidTeamsToken"
    assert "token" not in response.json()


def test_teams_exchange_needs_a_signed_in_caller(api: Api, stack: dict):
    oid, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    response = api.call("POST", "/api/teams/token", json={"teamsToken": _entra_token(stack, oid, app_id), "appId": app_id, "userId": oid})
    assert response.status_code == 401
