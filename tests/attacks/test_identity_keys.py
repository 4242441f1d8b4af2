"""App user ids that become table keys the long way, and ids that spell out another kind of
user, never reach another person's identity.

An id whose escaped form is longer than a key may be is stored under ``sha256-<digest>``: its
mapping, its tombstone and its revocation rows must all be found under that key, and two such ids
differing in one character must stay two users. A Microsoft Entra bearer user is
``entra:<tid>|<oid>``; no principal, whatever provider name and user id it carries, becomes that."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.attacks.conftest import remove_tombstone
from tests.conftest import Api, Emulator, User, expect_error, new_user
from tests.trust.conftest import Issuer


def test_users_whose_ids_only_fit_as_hashed_keys_stay_apart_and_can_be_deleted(api: Api, emulator: Emulator, table):
    stem = "%" * 200 + uuid.uuid4().hex  # 200 x "%25": far past the 512 characters a key may have
    first, second = User(stem + "a"), User(stem + "b")
    one, two = api.token(first), api.token(second)
    assert one.status_code == two.status_code == 200, (one.text, two.text)
    assert one.json()["communicationUserId"] != two.json()["communicationUserId"]
    for user, issued in ((first, one), (second, two)):
        mine = api.call("GET", "/api/identity", user).json()
        assert mine == {"appUserId": user.app_user_id, "communicationUserId": issued.json()["communicationUserId"]}

    # A revoke of one is recorded under its key and stops only its tokens.
    assert api.call("POST", "/api/token/revoke", second).status_code == 204
    assert emulator.verify(one.json()["token"])["valid"]

    admin = new_user(roles=("anonymous", "authenticated", "admin"))
    marked = api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": [first.app_user_id]})
    assert marked.status_code == 202 and marked.json() == {"marked": 1, "matched": 1}
    try:
        expect_error(api.token(first, fresh=True), 403, "AccountDeleted")
        assert api.token(second, fresh=True).status_code == 200
    finally:
        for user in (first, second):
            assert api.call("DELETE", "/api/identity", user).status_code == 204
        remove_tombstone(table, first.app_user_id)
    assert api.call("GET", "/api/identity", first).status_code == 404


TENANT = "5b0c2e1d-7777-4c7a-8f9e-1a2b3c4d5e6f"


@pytest.fixture(scope="module")
def entra_api(start_host) -> Api:
    """Bearer callers keyed as OIDC_USER_KEY=auto keys Entra issuers, beside trusted principals."""
    return start_host({"OIDC_USER_KEY": "tid+oid"}, "entra-keys")


def _principal(document: dict) -> dict[str, str]:
    return {"x-ms-client-principal": base64.b64encode(json.dumps(document).encode()).decode()}


def test_no_principal_becomes_an_entra_bearer_user(entra_api: Api, issuer: Issuer):
    oid = str(uuid.uuid4())
    entra = issuer.headers(claims={"tid": TENANT, "oid": oid})
    owned = entra_api.call("POST", "/api/token", headers=entra)
    assert owned.status_code == 200, owned.text
    assert entra_api.call("GET", "/api/identity", headers=entra).json()["appUserId"] == f"entra:{TENANT}|{oid}"

    roles = ["anonymous", "authenticated"]
    spelled = [
        {"identityProvider": "entra", "userId": f"{TENANT}|{oid}", "userRoles": roles},
        {"identityProvider": "entra", "userId": f":{TENANT}|{oid}", "userRoles": roles},
        {"auth_typ": "entra", "claims": [{"typ": "oid", "val": f":{TENANT}|{oid}"}, {"typ": "tid", "val": TENANT}]},
        {"auth_typ": "aad", "claims": [{"typ": "oid", "val": oid}, {"typ": "tid", "val": TENANT}]},
    ]
    for document in spelled:
        response = entra_api.call("POST", "/api/token", headers=_principal(document))
        assert response.status_code == 200, response.text
        assert response.json()["communicationUserId"] != owned.json()["communicationUserId"], document
        entra_api.call("DELETE", "/api/identity", headers=_principal(document))
    for provider in (f"entra:{TENANT}", "ENTRA:" + TENANT):
        forged = _principal({"identityProvider": provider, "userId": oid, "userRoles": roles})
        expect_error(entra_api.call("POST", "/api/token", headers=forged), 401, "InvalidPrincipal")
    assert entra_api.call("GET", "/api/identity", headers=entra).json()["communicationUserId"] == owned.json()["communicationUserId"]
    entra_api.call("DELETE", "/api/identity", headers=entra)
