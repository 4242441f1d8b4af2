"""The operator endpoint, POST /api/manage/deleted-users: what it answers about the ids it got."""

from __future__ import annotations

from tests.conftest import Api, new_user

ADMIN = ("anonymous", "authenticated", "admin")


def test_the_operator_endpoint_reports_how_many_ids_matched_an_existing_user(api: Api):
    existing = new_user()
    assert api.token(existing).status_code == 200
    admin = new_user(("anonymous", "authenticated", "admin"))
    ids = [existing.app_user_id, new_user().app_user_id, existing.app_user_id]
    response = api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": ids})
    assert response.status_code == 202, response.text
    assert response.json() == {"marked": 2, "matched": 1}


def test_ids_of_every_shape_the_service_makes_are_accepted(api: Api, stack: dict):
    ids = ["github|abc", "aad|0f0e", f"{stack['oidcIssuer']}|sub-1", "entra:5b0c2e1d-3333-4c7a-8f9e-1a2b3c4d5e6f|6c2d6a9e-0f0e"]
    response = api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json={"appUserIds": ids})
    assert response.status_code == 202, response.text
    assert response.json() == {"marked": 4, "matched": 0}
