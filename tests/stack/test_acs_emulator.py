"""The local ACS Identity emulator behaves like the service for the real SDK and for raw calls.

SDK tests run four ways (sync/aio × connection string/managed identity); wire-level cases
(authentication failures, error codes, throttling) use raw signed requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from devstack.acs_emulator.auth import sign_request_headers

from .conftest import STATE_DIR, CliServer, IdentityEndpoint, LocalAcs, SdkClient, emulator_config, free_port

pytestmark = pytest.mark.timeout(60)

SCOPES = ["chat", "chat.join", "chat.join.limited", "voip", "voip.join"]


def minutes_until(expires_on: str) -> float:
    return (dt.datetime.fromisoformat(expires_on) - dt.datetime.now(dt.timezone.utc)).total_seconds() / 60


def error_of(response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error.get("target")


# -- HMAC as the SDK computes it -----------------------------------------------------------


def test_hmac_signature_matches_the_sdk_test_vector() -> None:
    headers = sign_request_headers(
        base64.b64decode("pw=="),
        "GET",
        "/testPath?testQuery=yes",
        "contoso.communicationservices.azure.com",
        b"",
        date="Wed, 13 Apr 2022 18:09:12 GMT",
    )
    assert headers["x-ms-content-sha256"] == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    assert headers["Authorization"] == (
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        "&Signature=il99+rd6V5O136roX/zVePCNle78HmvC4B7tu9zRH3I="
    )


# -- the real SDK ---------------------------------------------------------------------------


def test_created_user_is_a_live_identity_of_the_resource(sdk: SdkClient, acs: LocalAcs) -> None:
    user = sdk.create_user()
    assert user.properties["id"].startswith(f"8:acs:{acs.resource_id}_")
    assert acs.live_ids() == [user.properties["id"]]


@pytest.mark.parametrize("scope", SCOPES)
def test_token_is_issued_for_each_scope(sdk: SdkClient, acs: LocalAcs, scope: str) -> None:
    user = sdk.create_user()
    token = sdk.get_token(user, [scope])
    verdict = acs.verify(token.token)
    assert verdict["valid"] is True
    assert verdict["communicationUserId"] == user.properties["id"]
    assert verdict["scopes"] == [scope]


@pytest.mark.parametrize("hours", [1, 24])
def test_token_lives_as_long_as_requested(sdk: SdkClient, acs: LocalAcs, hours: int) -> None:
    user = sdk.create_user()
    token = sdk.get_token(user, ["chat", "voip"], token_expires_in=dt.timedelta(hours=hours))
    assert minutes_until(token.expires_on) == pytest.approx(hours * 60, abs=2)
    assert acs.verify(token.token)["expiresOn"] == token.expires_on


def test_token_defaults_to_a_day(sdk: SdkClient) -> None:
    token = sdk.get_token(sdk.create_user(), ["chat"])
    assert minutes_until(token.expires_on) == pytest.approx(1440, abs=2)


def test_user_and_token_are_created_together(sdk: SdkClient, acs: LocalAcs) -> None:
    user, token = sdk.create_user_and_token(["chat", "voip"], token_expires_in=dt.timedelta(hours=2))
    verdict = acs.verify(token.token)
    assert verdict["valid"] and verdict["communicationUserId"] == user.properties["id"]
    assert verdict["scopes"] == ["chat", "voip"]
    assert minutes_until(token.expires_on) == pytest.approx(120, abs=2)


def test_revoked_token_no_longer_verifies_when_revocation_is_immediate_emulator_only(sdk: SdkClient, acs: LocalAcs) -> None:
    """Immediate enforcement is the emulator's default; real ACS takes up to 15 minutes."""
    user = sdk.create_user()
    old = sdk.get_token(user, ["chat"])
    sdk.revoke_tokens(user)
    verdict = acs.verify(old.token)
    assert (verdict["valid"], verdict["reason"], verdict["revoked"]) == (False, "revoked", True)
    new = sdk.get_token(user, ["chat"])
    assert acs.verify(new.token)["valid"] is True


def test_revoked_token_keeps_verifying_for_the_configured_propagation_delay(acs: LocalAcs) -> None:
    """Real ACS: revocation "can take up to 15 minutes to propagate" (identity-model doc)."""
    acs.configure(revocationDelaySeconds=900)
    identity_id = _new_identity(acs)
    old = _issue(acs, identity_id, {"scopes": ["chat"]}).json()["token"]
    assert acs.signed("POST", f"/identities/{identity_id}/:revokeAccessTokens").status_code == 204
    verdict = acs.verify(old)
    assert (verdict["valid"], verdict["reason"], verdict["revoked"]) == (True, None, True)
    acs.configure(revocationDelaySeconds=0)
    assert (acs.verify(old)["valid"], acs.verify(old)["reason"]) == (False, "revoked")


def test_deleted_user_is_gone_with_its_tokens(sdk: SdkClient, acs: LocalAcs) -> None:
    user = sdk.create_user()
    token = sdk.get_token(user, ["voip"])
    sdk.delete_user(user)
    verdict = acs.verify(token.token)
    assert (verdict["valid"], verdict["reason"]) == (False, "deleted")
    assert acs.live_ids() == []
    with pytest.raises(ResourceNotFoundError):
        sdk.get_token(user, ["voip"])


def test_teams_user_token_is_exchanged(sdk: SdkClient, acs: LocalAcs, identity_endpoint: IdentityEndpoint) -> None:
    oid, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    entra = identity_endpoint.entra_user_token(oid, app_id)
    token = sdk.get_token_for_teams_user(entra, app_id, oid)
    verdict = acs.verify(token.token)
    assert verdict["valid"] and verdict["communicationUserId"] == f"8:orgid:{oid}"
    assert minutes_until(token.expires_on) == pytest.approx(60, abs=2)


def test_sdk_recovers_from_throttling(sdk: SdkClient, acs: LocalAcs) -> None:
    acs.configure(limits={"issueAccessToken": 1}, limitWindowSeconds=1)
    user = sdk.create_user()
    tokens = [sdk.get_token(user, ["chat"]) for _ in range(2)]
    assert all(acs.verify(t.token)["valid"] for t in tokens)
    assert acs.control("GET", "stats").json()["throttled"]["issueAccessToken"] >= 1


@pytest.mark.parametrize("retry_after", [None, 1])
def test_sdk_retries_through_injected_faults(sdk: SdkClient, acs: LocalAcs, retry_after: int | None) -> None:
    user = sdk.create_user()
    acs.control("POST", "faults", {"status": 503, "count": 1, "retryAfterSeconds": retry_after, "operations": ["issueAccessToken"]})
    token = sdk.get_token(user, ["chat"])
    assert acs.verify(token.token)["valid"] is True
    stats = acs.control("GET", "stats").json()
    assert stats["faulted"] == {"issueAccessToken": 1}
    assert stats["statuses"]["issueAccessToken"] == {"503": 1, "200": 1}


def test_persistent_faults_surface_as_service_errors(acs: LocalAcs) -> None:
    from azure.communication.identity import CommunicationIdentityClient

    client = CommunicationIdentityClient.from_connection_string(acs.connection_string, retry_total=0)
    acs.control("POST", "faults", {"status": 500, "count": 1, "operations": ["createIdentity"]})
    with pytest.raises(HttpResponseError) as raised:
        client.create_user()
    assert raised.value.status_code == 500
    assert client.create_user().properties["id"] in acs.live_ids()


# -- authentication ---------------------------------------------------------------------------


def test_signed_request_is_accepted(acs: LocalAcs) -> None:
    response = acs.signed("POST", "/identities", b"")
    assert response.status_code == 201
    assert response.json()["identity"]["id"] in acs.live_ids()


@pytest.mark.parametrize(
    "case",
    ["wrong key", "tampered body", "stale date", "future date", "no authorization", "unknown scheme"],
)
def test_badly_signed_request_is_denied(acs: LocalAcs, case: str) -> None:
    body = json.dumps({"createTokenWithScopes": ["chat"]}).encode()
    if case == "wrong key":
        response = acs.signed("POST", "/identities", body, key=base64.b64encode(secrets.token_bytes(32)).decode())
    elif case == "tampered body":
        response = acs.signed("POST", "/identities", body, tamper=lambda b: b.replace(b"chat", b"voip"))
    elif case in ("stale date", "future date"):
        offset = dt.timedelta(minutes=-16 if case == "stale date" else 16)
        date = (dt.datetime.now(dt.timezone.utc) + offset).strftime("%a, %d %b %Y %H:%M:%S GMT")
        response = acs.signed("POST", "/identities", body, date=date)
    elif case == "no authorization":
        response = acs.signed("POST", "/identities", body, headers={"Authorization": ""})
    else:
        response = acs.signed("POST", "/identities", body, headers={"Authorization": "SharedKey abc"})
    assert error_of(response)[:2] == (401, "Denied")
    assert acs.live_ids() == []


def test_bearer_token_for_communication_is_accepted(acs: LocalAcs, identity_endpoint: IdentityEndpoint) -> None:
    token = identity_endpoint.token("https://communication.azure.com/")
    assert acs.bearer("POST", "/identities", token).status_code == 201


@pytest.mark.parametrize("case", ["another audience", "foreign signer", "garbage"])
def test_bad_bearer_token_is_denied(acs: LocalAcs, identity_endpoint: IdentityEndpoint, case: str) -> None:
    if case == "another audience":
        token = identity_endpoint.token("https://storage.azure.com")
    elif case == "foreign signer":
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(dt.datetime.now(dt.timezone.utc).timestamp())
        token = jwt.encode({"aud": "https://communication.azure.com", "exp": now + 600, "iat": now}, key, algorithm="RS256")
    else:
        token = "not.a.jwt"
    assert error_of(acs.bearer("POST", "/identities", token))[:2] == (401, "Denied")


# -- the service's errors -------------------------------------------------------------------


def _new_identity(acs: LocalAcs) -> str:
    return acs.signed("POST", "/identities").json()["identity"]["id"]


def _issue(acs: LocalAcs, identity_id: str, body: object) -> object:
    return acs.signed("POST", f"/identities/{identity_id}/:issueAccessToken", json.dumps(body).encode())


@pytest.mark.parametrize("minutes", [59, 1441, "60", 90.5])
def test_lifetime_outside_an_hour_to_a_day_is_rejected(acs: LocalAcs, minutes: object) -> None:
    response = _issue(acs, _new_identity(acs), {"scopes": ["chat"], "expiresInMinutes": minutes})
    assert error_of(response) == (400, "ValidationError", "ExpiresInMinutes")
    create = acs.signed("POST", "/identities", json.dumps({"createTokenWithScopes": ["chat"], "expiresInMinutes": minutes}).encode())
    assert error_of(create) == (400, "ValidationError", "ExpiresInMinutes")


@pytest.mark.parametrize("minutes", [60, 1440])
def test_lifetime_bounds_are_accepted(acs: LocalAcs, minutes: int) -> None:
    response = _issue(acs, _new_identity(acs), {"scopes": ["chat"], "expiresInMinutes": minutes})
    assert response.status_code == 200
    assert minutes_until(response.json()["expiresOn"]) == pytest.approx(minutes, abs=2)


@pytest.mark.parametrize("body", [{}, {"scopes": None}, {"scopes": []}])
def test_token_without_scopes_is_rejected(acs: LocalAcs, body: dict) -> None:
    assert error_of(_issue(acs, _new_identity(acs), body)) == (400, "ValidationError", "Scopes")


def test_unknown_scope_is_rejected(acs: LocalAcs) -> None:
    status, code, _ = error_of(_issue(acs, _new_identity(acs), {"scopes": ["chat", "admin"]}))
    assert (status, code) == (400, "ValidationError")


def test_identity_of_another_resource_is_not_owned(acs: LocalAcs) -> None:
    foreign = f"8:acs:{uuid.uuid4()}_{uuid.uuid4()}"
    assert error_of(_issue(acs, foreign, {"scopes": ["chat"]}))[:2] == (401, "IdentityNotOwned")
    assert error_of(acs.signed("DELETE", f"/identities/{foreign}"))[:2] == (401, "IdentityNotOwned")


def test_identity_of_another_resource_gets_the_recorded_answer(acs: LocalAcs) -> None:
    """As recorded from the real service (Azure/azure-sdk-assets, js communication-identity
    recordings, "throws an error when attempting to issue a token for an invalid user")."""
    foreign = f"8:acs:{uuid.uuid4()}_{uuid.uuid4()}"
    for response in (
        _issue(acs, foreign, {"scopes": ["chat", "voip"]}),
        acs.signed("POST", f"/identities/{foreign}/:revokeAccessTokens"),
        acs.signed("DELETE", f"/identities/{foreign}"),
    ):
        assert response.json() == {"error": {"code": "IdentityNotOwned", "message": "Provided identity doesn't belong to the resource."}}
        assert response.status_code == 401


DELETED_VARIANTS = {
    "404": (404, "IdentityNotFound"),
    "400": (400, "ValidationError"),
    "403": (403, "IdentityNotFound"),
    "401": (401, "IdentityNotOwned"),
}


@pytest.mark.parametrize("variant", sorted(DELETED_VARIANTS))
def test_unknown_and_deleted_identities_get_the_configured_answer(acs: LocalAcs, variant: str) -> None:
    """Real ACS's answer for a deleted identity is undocumented: each plausible one can be chosen."""
    acs.configure(deletedIdentityAnswer=variant)
    unknown = f"8:acs:{acs.resource_id}_{uuid.uuid4()}"
    assert error_of(_issue(acs, unknown, {"scopes": ["chat"]}))[:2] == DELETED_VARIANTS[variant]
    deleted = _new_identity(acs)
    assert acs.signed("DELETE", f"/identities/{deleted}").status_code == 204
    for method, path in (
        ("DELETE", f"/identities/{deleted}"),
        ("POST", f"/identities/{deleted}/:revokeAccessTokens"),
    ):
        assert error_of(acs.signed(method, path))[:2] == DELETED_VARIANTS[variant]
    assert error_of(_issue(acs, deleted, {"scopes": ["chat"]}))[:2] == DELETED_VARIANTS[variant]


def test_replaced_resource_finds_every_earlier_identity_foreign_until_restored(acs: LocalAcs) -> None:
    identity_id = _new_identity(acs)
    assert acs.control("PUT", "resource", {"resourceId": str(uuid.uuid4())}).status_code == 200
    assert error_of(_issue(acs, identity_id, {"scopes": ["chat"]}))[:2] == (401, "IdentityNotOwned")
    newer = _new_identity(acs)
    assert _issue(acs, newer, {"scopes": ["chat"]}).status_code == 200
    assert acs.control("PUT", "resource", {"resourceId": None}).json() == {"resourceId": acs.resource_id}
    assert _issue(acs, identity_id, {"scopes": ["chat"]}).status_code == 200


def test_percent_encoded_and_literal_ids_name_the_same_identity(acs: LocalAcs) -> None:
    identity_id = _new_identity(acs)
    encoded = identity_id.replace(":", "%3A")
    assert _issue(acs, encoded, {"scopes": ["chat"]}).status_code == 200
    assert _issue(acs, identity_id, {"scopes": ["chat"]}).status_code == 200


@pytest.mark.parametrize("version", [None, "2099-01-01", ""])
def test_unsupported_api_version_is_rejected(acs: LocalAcs, version: str | None) -> None:
    response = acs.signed("POST", "/identities", api_version=version)
    assert error_of(response)[:2] == (400, "UnsupportedApiVersion")


def _same_second_tokens(acs: LocalAcs, identity_id: str) -> set[str]:
    """Three identical issues within one wall-clock second (retried if a second boundary fell
    between them)."""
    while True:
        started = int(dt.datetime.now(dt.timezone.utc).timestamp())
        tokens = {_issue(acs, identity_id, {"scopes": ["chat"]}).json()["token"] for _ in range(3)}
        if int(dt.datetime.now(dt.timezone.utc).timestamp()) == started:
            return tokens


def test_identical_issues_within_a_second_return_the_same_token_as_real_acs_may(acs: LocalAcs) -> None:
    acs.configure(identicalTokensWithinSecond=True)
    identity_id = _new_identity(acs)
    assert len(_same_second_tokens(acs, identity_id)) == 1
    other_scopes = _issue(acs, identity_id, {"scopes": ["voip"]}).json()["token"]
    assert other_scopes not in _same_second_tokens(acs, identity_id)


def test_tokens_issued_in_the_same_second_differ_when_configured_unique_emulator_only(acs: LocalAcs) -> None:
    acs.configure(identicalTokensWithinSecond=False)
    identity_id = _new_identity(acs)
    assert len(_same_second_tokens(acs, identity_id)) == 3


def test_a_revocation_revokes_whole_second_tokens_issued_later_in_its_second(acs: LocalAcs) -> None:
    """Whole-second token times: a token issued after a revocation but in the same second counts
    as revoked, so a service must wait for the next second before issuing again."""
    acs.configure(identicalTokensWithinSecond=True)
    identity_id = _new_identity(acs)
    while True:
        second = int(dt.datetime.now(dt.timezone.utc).timestamp())
        assert acs.signed("POST", f"/identities/{identity_id}/:revokeAccessTokens").status_code == 204
        after = _issue(acs, identity_id, {"scopes": ["chat"]}).json()["token"]
        if int(dt.datetime.now(dt.timezone.utc).timestamp()) == second:
            break
    assert acs.verify(after)["revoked"] is True


# -- what real ACS sends with every answer -----------------------------------------------------

RECORDED_HEADERS = {"ms-cv", "x-azure-ref", "x-processing-time", "x-cache", "request-context", "strict-transport-security"}
RECORDED_VERSIONS = (
    "2020-07-20-preview2, 2021-03-07, 2021-10-31-preview, 2021-11-01, 2022-06-01, 2022-10-01, 2023-10-01, 2025-03-02-preview"
)


def test_answers_carry_the_headers_real_acs_sends(acs: LocalAcs) -> None:
    created = acs.signed("POST", "/identities", headers={"x-ms-client-request-id": "abc"})
    failed = _issue(acs, created.json()["identity"]["id"], {"scopes": []})
    for response in (created, failed):
        assert RECORDED_HEADERS <= {name.lower() for name in response.headers}
        assert response.headers["api-supported-versions"] == RECORDED_VERSIONS
    assert created.headers["x-ms-client-request-id"] == "abc"
    assert created.headers["Content-Type"] == "application/json; charset=utf-8"
    assert failed.headers["Content-Type"] == "application/json"
    assert created.headers["MS-CV"] != failed.headers["MS-CV"]


def test_a_fault_after_commit_creates_the_identity_and_fails_the_reply(acs: LocalAcs) -> None:
    acs.control("POST", "faults", {"status": 500, "count": 1, "operations": ["createIdentity"], "commit": True})
    response = acs.signed("POST", "/identities")
    assert response.status_code == 500
    [record] = acs.control("GET", "stats").json()["committedThenFailed"]
    assert record["operation"] == "createIdentity" and record["msCv"] == response.headers["MS-CV"]
    assert acs.live_ids() == [record["identity"]]


def test_a_fault_can_answer_with_a_chosen_code(acs: LocalAcs) -> None:
    identity_id = _new_identity(acs)
    acs.control("POST", "faults", {"status": 403, "count": 1, "operations": ["issueAccessToken"], "code": "Denied"})
    assert error_of(_issue(acs, identity_id, {"scopes": ["chat"]}))[:2] == (403, "Denied")


# -- Teams user exchange ----------------------------------------------------------------------


def _exchange(acs: LocalAcs, body: dict) -> object:
    return acs.signed("POST", "/teamsUser/:exchangeAccessToken", json.dumps(body).encode())


# Every answer below is exactly as recorded from the real service (../acs-recordings: the
# js__get_token_for_teams_user_* and py-sync__test_get_token_for_teams_user_* sessions, from
# Azure/azure-sdk-assets js/sdk/communication/communication-identity/recordings/node/
# get_token_for_teams_user_playbacklive_aad_eq_false/ and
# python/sdk/communication/azure-communication-identity/tests/recordings/): status, code,
# message, target, and whether api-supported-versions was sent.
TEAMS_CASES = {
    "empty token": (401, "InvalidAccessToken", "Provided access token is not valid.", None, False),
    "invalid token, empty userId": (401, "InvalidAccessToken", "Provided access token is not valid.", None, False),
    "expired token": (401, "InvalidAccessToken", "Provided access token is not valid.", None, False),
    "empty appId": (400, "ValidationError", "AppId: The AppId field is required.", "AppId", False),
    "empty userId": (400, "ValidationError", "UserId: The UserId field is required.", "UserId", False),
    "malformed appId": (400, "ValidationError", "Provided AppId has invalid format.", "appId", True),
    "malformed userId": (400, "ValidationError", "Provided UserId has invalid format.", "userId", True),
    "wrong app": (400, "ValidationError", "AAD application is not the expected one.", "appId", True),
    "wrong user": (400, "ValidationError", "Provided AAD token issued for unexpected user.", "userId", True),
}
TEAMS_VERSIONS = "2021-10-31-preview, 2022-06-01, 2022-10-01, 2023-10-01, 2025-03-02-preview"


@pytest.mark.parametrize("case", sorted(TEAMS_CASES))
def test_teams_exchange_errors_are_exactly_as_recorded(acs: LocalAcs, identity_endpoint: IdentityEndpoint, case: str) -> None:
    oid, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    token = identity_endpoint.entra_user_token(oid, app_id, expires_in_seconds=-120 if case == "expired token" else None)
    body = {"token": token, "appId": app_id, "userId": oid}
    body.update({
        "empty token": {"token": ""},
        "invalid token, empty userId": {"token": "invalid", "userId": ""},
        "expired token": {},
        "empty appId": {"appId": ""},
        "empty userId": {"userId": ""},
        "malformed appId": {"appId": "invalid"},
        "malformed userId": {"userId": "sanitized"},
        "wrong app": {"appId": oid},
        "wrong user": {"userId": app_id},
    }[case])
    response = _exchange(acs, body)
    status, code, message, target, lists_versions = TEAMS_CASES[case]
    expected = {"code": code, "message": message, **({"target": target} if target else {})}
    assert (response.status_code, response.json()["error"]) == (status, expected)
    assert response.headers.get("api-supported-versions") == (TEAMS_VERSIONS if lists_versions else None)
    assert "MS-CV" in response.headers


@pytest.mark.parametrize("case", ["garbage", "wrong audience"])
def test_teams_exchange_refuses_tokens_that_are_not_entra_tokens_for_acs(
    acs: LocalAcs, identity_endpoint: IdentityEndpoint, case: str
) -> None:
    oid, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    token = "eyJ.not.valid" if case == "garbage" else identity_endpoint.token("https://communication.azure.com")
    assert error_of(_exchange(acs, {"token": token, "appId": app_id, "userId": oid}))[:2] == (401, "InvalidAccessToken")


# -- throttling, latency, control surface ------------------------------------------------------


def test_requests_past_an_operation_limit_get_429_with_retry_after(acs: LocalAcs) -> None:
    acs.configure(limits={"createIdentity": 2})
    statuses = [acs.signed("POST", "/identities").status_code for _ in range(2)]
    throttled = acs.signed("POST", "/identities")
    assert statuses == [201, 201]
    assert error_of(throttled)[:2] == (429, "TooManyRequests")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 30
    assert _issue(acs, acs.live_ids()[0], {"scopes": ["chat"]}).status_code == 200  # other operations unaffected
    stats = acs.control("GET", "stats").json()
    assert stats["throttled"] == {"createIdentity": 1} and stats["throttledTotal"] == 1


def test_limit_scale_shrinks_every_limit(acs: LocalAcs) -> None:
    acs.configure(limitScale=0.002)
    limits = acs.control("GET", "config").json()["limits"]
    assert limits == {
        "createIdentity": 2, "createIdentityAndToken": 2, "issueAccessToken": 2,
        "deleteIdentity": 1, "revokeAccessTokens": 1, "exchangeTeamsUserAccessToken": 1,
    }
    assert [acs.signed("POST", "/identities").status_code for _ in range(3)] == [201, 201, 429]


def test_requests_per_second_throttles_all_operations_together(acs: LocalAcs) -> None:
    acs.configure(requestsPerSecond=2)
    identity_id = _new_identity(acs)
    second = _issue(acs, identity_id, {"scopes": ["chat"]})
    third = acs.signed("POST", f"/identities/{identity_id}/:revokeAccessTokens")
    assert second.status_code == 200
    assert error_of(third)[:2] == (429, "TooManyRequests") and third.headers["Retry-After"] == "1"
    acs.configure(requestsPerSecond=None)
    assert acs.signed("POST", f"/identities/{identity_id}/:revokeAccessTokens").status_code == 204


def test_faults_hit_only_the_named_operations_and_can_be_cleared(acs: LocalAcs) -> None:
    acs.control("POST", "faults", {"status": 503, "count": 5, "retryAfterSeconds": 2, "operations": ["deleteIdentity"]})
    identity_id = _new_identity(acs)
    failed = acs.signed("DELETE", f"/identities/{identity_id}")
    assert error_of(failed)[:2] == (503, "ServiceUnavailable") and failed.headers["Retry-After"] == "2"
    assert acs.control("GET", "faults").json()["faults"][0]["remaining"] == 4
    assert acs.control("DELETE", "faults").status_code == 204
    assert acs.signed("DELETE", f"/identities/{identity_id}").status_code == 204


def test_config_changes_are_reported_and_reset(acs: LocalAcs) -> None:
    acs.configure(latencyMs=5, requestsPerSecond=100)
    config = acs.control("GET", "config").json()
    assert (config["latencyMs"], config["requestsPerSecond"]) == (5, 100)
    assert _new_identity(acs) in acs.live_ids()  # requests still succeed with latency added
    assert acs.control("POST", "reset").status_code == 204
    config = acs.control("GET", "config").json()
    assert (config["latencyMs"], config["requestsPerSecond"]) == (0, None)
    assert acs.live_ids() == []


@pytest.mark.parametrize("body", [{"unknown": 1}, {"limits": {"nope": 1}}, {"limitScale": 0}])
def test_invalid_config_is_refused(acs: LocalAcs, body: dict) -> None:
    assert acs.control("PUT", "config", body).status_code == 400


def test_verify_reports_tokens_it_did_not_sign(acs: LocalAcs, identity_endpoint: IdentityEndpoint) -> None:
    verdict = acs.verify(identity_endpoint.token("https://communication.azure.com"))
    assert (verdict["valid"], verdict["reason"]) == (False, "bad-signature")


def test_stats_count_calls_per_operation(acs: LocalAcs) -> None:
    identity_id = _new_identity(acs)
    _issue(acs, identity_id, {"scopes": ["chat"]})
    _issue(acs, identity_id, {"scopes": []})
    stats = acs.control("GET", "stats").json()
    assert stats["calls"] == {"createIdentity": 1, "issueAccessToken": 2}
    assert stats["statuses"]["issueAccessToken"] == {"200": 1, "400": 1}


def _seen_under_way(acs: LocalAcs, operation: str) -> list[dict]:
    deadline = time.monotonic() + 10
    while not (under_way := acs.control("GET", f"calls/in-flight?operation={operation}").json()["inFlight"]):
        assert time.monotonic() < deadline, f"the {operation} never showed as under way"
        time.sleep(0.02)
    return under_way


def test_the_call_log_shows_a_call_under_way_until_it_is_answered(acs: LocalAcs) -> None:
    """What a test acts on instead of a guessed time: a call is listed as under way, with the
    identity its path names, from its arrival until its answer, then in the call log with the
    same arrival time and its status."""
    acs.configure(latencyMs=800)
    with ThreadPoolExecutor(1) as pool:
        created = pool.submit(_new_identity, acs)
        under_way = _seen_under_way(acs, "createIdentity")
        assert acs.control("GET", "calls").json()["inFlight"] == under_way
        assert acs.control("GET", "calls/in-flight?operation=deleteIdentity").json()["inFlight"] == []
        identity = created.result()
        deleted = pool.submit(acs.signed, "DELETE", f"/identities/{identity}")
        deleting = _seen_under_way(acs, "deleteIdentity")
        assert deleted.result().status_code == 204
    assert [(c["operation"], c["identity"]) for c in under_way] == [("createIdentity", None)]
    assert [(c["operation"], c["identity"]) for c in deleting] == [("deleteIdentity", identity)]
    log = acs.control("GET", "calls").json()
    assert log["inFlight"] == [] and acs.control("GET", "calls/in-flight").json()["inFlight"] == []
    [create] = [c for c in log["calls"] if c["operation"] == "createIdentity"]
    assert (create["identity"], create["status"], create["arrivedMs"]) == (identity, 201, under_way[0]["arrivedMs"])
    assert create["answeredMs"] - create["arrivedMs"] >= 800


# -- state across restarts ----------------------------------------------------------------------


def test_state_file_keeps_identities_and_revocations_across_restarts(tmp_path: Path, start_emulator) -> None:
    config = emulator_config(state_file=tmp_path / "acs.json", token_key_path=tmp_path / "token.key")
    first = start_emulator(config)
    kept, revoked, deleted = (_new_identity(first) for _ in range(3))
    revoked_token = _issue(first, revoked, {"scopes": ["chat"]}).json()["token"]
    kept_token = _issue(first, kept, {"scopes": ["chat"]}).json()["token"]
    assert first.signed("POST", f"/identities/{revoked}/:revokeAccessTokens").status_code == 204
    assert first.signed("DELETE", f"/identities/{deleted}").status_code == 204
    first.stop()

    second = start_emulator(config)
    assert sorted(second.live_ids()) == sorted([kept, revoked])
    assert second.verify(kept_token)["valid"] is True
    assert second.verify(revoked_token)["reason"] == "revoked"
    assert error_of(second.signed("DELETE", f"/identities/{deleted}"))[:2] == (404, "IdentityNotFound")


# -- the command line ---------------------------------------------------------------------------


def test_command_line_server_serves_the_sdk_and_saves_state_on_stop(tmp_path: Path) -> None:
    from azure.communication.identity import CommunicationIdentityClient

    port, state_file = free_port(), tmp_path / "acs.json"
    access_key = base64.b64encode(secrets.token_bytes(32)).decode()
    resource_id = str(uuid.uuid4())
    server = CliServer(
        [
            "-m", "devstack.acs_emulator", "--port", str(port), "--state-dir", str(STATE_DIR),
            "--state-file", str(state_file), "--resource-id", resource_id, "--quiet",
        ],
        env={"ACS_EMULATOR_ACCESS_KEY": access_key},
    )
    try:
        assert "ready" in server.first_line
        client = CommunicationIdentityClient.from_connection_string(f"endpoint=https://127.0.0.1:{port}/;accesskey={access_key}")
        user = client.create_user()
    finally:
        assert server.stop() == 0
    saved = json.loads(state_file.read_text())
    assert saved["resourceId"] == resource_id and user.properties["id"] in saved["identities"]
