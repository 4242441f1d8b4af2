"""The local managed-identity endpoint speaks App Service's protocol, so DefaultAzureCredential
gets tokens from it exactly as it does in Azure, and its tokens carry what verifiers check."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests
from azure.identity import DefaultAzureCredential
from azure.identity.aio import DefaultAzureCredential as AioDefaultAzureCredential

from devstack.pki import Pki

from .conftest import STATE_DIR, CliServer, IdentityEndpoint, free_port

pytestmark = pytest.mark.timeout(60)

ACS_SCOPE = "https://communication.azure.com//.default"  # what the ACS SDK asks for
STORAGE_SCOPE = "https://storage.azure.com/.default"  # what azure-data-tables asks for


def claims_of(token: str, pki: Pki, audience: str) -> dict:
    return jwt.decode(token, pki.signing_public.read_bytes(), algorithms=["RS256"], audience=audience)


@pytest.mark.parametrize(
    ("scope", "audience"),
    [(ACS_SCOPE, "https://communication.azure.com"), (STORAGE_SCOPE, "https://storage.azure.com")],
)
def test_default_credential_gets_a_signed_token(managed_identity_env: IdentityEndpoint, pki: Pki, scope: str, audience: str) -> None:
    credential = DefaultAzureCredential()
    token = credential.get_token(scope)
    claims = claims_of(token.token, pki, audience)
    config = managed_identity_env.config
    assert claims["iss"] == f"https://sts.windows.net/{config.tenant_id}/"
    assert claims["oid"] == claims["sub"] == config.principal_id
    assert claims["appid"] == config.client_id
    assert token.expires_on == claims["exp"]
    assert claims["exp"] - time.time() == pytest.approx(3600, abs=120)
    assert jwt.get_unverified_header(token.token)["kid"] == pki.signing_kid()


@pytest.mark.asyncio
async def test_async_default_credential_gets_a_signed_token(managed_identity_env: IdentityEndpoint, pki: Pki) -> None:
    async with AioDefaultAzureCredential() as credential:
        token = await credential.get_token(ACS_SCOPE)
    claims = claims_of(token.token, pki, "https://communication.azure.com")
    assert claims["oid"] == managed_identity_env.config.principal_id


def test_user_assigned_client_id_is_honoured(managed_identity_env: IdentityEndpoint, monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    client_id = str(uuid.uuid4())
    monkeypatch.setenv("AZURE_CLIENT_ID", client_id)
    token = DefaultAzureCredential().get_token(STORAGE_SCOPE)
    assert claims_of(token.token, pki, "https://storage.azure.com")["appid"] == client_id


def _get(endpoint: IdentityEndpoint, headers: dict, **params: str) -> requests.Response:
    return requests.get(endpoint.url, params={"api-version": "2019-08-01", **params}, headers=headers, timeout=10)


def test_response_has_the_app_service_shape(identity_endpoint: IdentityEndpoint) -> None:
    response = _get(identity_endpoint, {"X-IDENTITY-HEADER": identity_endpoint.secret}, resource="https://storage.azure.com/")
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["token_type"] == "Bearer" and body["resource"] == "https://storage.azure.com/"
    assert body["expires_on"].isdigit()


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        ({}, {"resource": "https://storage.azure.com"}, 400),
        ({"X-IDENTITY-HEADER": "wrong"}, {"resource": "https://storage.azure.com"}, 401),
        (None, {"resource": "https://vault.azure.net"}, 400),
        (None, {}, 400),
        (None, {"resource": "https://storage.azure.com", "api-version": "2017-09-01"}, 400),
    ],
    ids=["no header", "wrong header", "unknown resource", "no resource", "old api-version"],
)
def test_bad_requests_get_no_token(identity_endpoint: IdentityEndpoint, headers: dict | None, params: dict, status: int) -> None:
    headers = {"X-IDENTITY-HEADER": identity_endpoint.secret} if headers is None else headers
    response = _get(identity_endpoint, headers, **params)
    assert response.status_code == status
    assert "access_token" not in response.json()


def test_entra_user_token_is_shaped_for_the_teams_exchange(identity_endpoint: IdentityEndpoint, pki: Pki) -> None:
    oid, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    claims = claims_of(identity_endpoint.entra_user_token(oid, app_id), pki, "https://auth.msft.communication.azure.com")
    assert (claims["oid"], claims["appid"]) == (oid, app_id)
    assert claims["iss"].startswith("https://sts.windows.net/")


def test_jwks_publishes_the_signing_key(identity_endpoint: IdentityEndpoint, pki: Pki) -> None:
    keys = requests.get(f"{identity_endpoint.base}/_local/jwks", timeout=10).json()["keys"]
    token = identity_endpoint.token("https://storage.azure.com")
    key = jwt.PyJWK(keys[0]).key
    assert keys[0]["kid"] == pki.signing_kid()
    assert jwt.decode(token, key, algorithms=["RS256"], audience="https://storage.azure.com")["aud"] == "https://storage.azure.com"


def test_health_answers(identity_endpoint: IdentityEndpoint) -> None:
    assert requests.get(f"{identity_endpoint.base}/_local/health", timeout=10).json() == {"status": "healthy"}


def test_command_line_endpoint_serves_default_credential(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    port, secret = free_port(), str(uuid.uuid4())
    server = CliServer(["-m", "devstack.identity_endpoint", "--port", str(port), "--state-dir", str(STATE_DIR), "--quiet"],
                       env={"IDENTITY_HEADER": secret})
    try:
        assert "ready" in server.first_line
        for name in ("AZURE_CLIENT_ID", "IMDS_ENDPOINT", "MSI_ENDPOINT"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{port}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", secret)
        token = DefaultAzureCredential().get_token(STORAGE_SCOPE)
        assert claims_of(token.token, pki, "https://storage.azure.com")["aud"] == "https://storage.azure.com"
    finally:
        assert server.stop() == 0
