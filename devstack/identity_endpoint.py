"""The local stand-in for the App Service / Functions managed-identity endpoint.

In Azure the function app reaches ACS and Table Storage with tokens from the platform's identity
endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER, api-version 2019-08-01), picked up by
DefaultAzureCredential. Serving the same protocol locally lets the app run with exactly the code
path it runs in Azure: no connection strings, no "if local" branches.

Tokens are RS256 JWTs signed with the dev stack's signing key (see ``devstack.pki``); the ACS
emulator verifies them with the public half, Azurite checks issuer, audience and times.

Local-only extras, under ``/_local/``:
- ``POST /_local/entra-user-token`` mints an Entra-shaped Teams user token for the token exchange;
- ``GET /_local/jwks`` publishes the public key for verifiers;
- ``GET /_local/health``.

Usage::

    python -m devstack.identity_endpoint --port 7092 --state-dir .devstack --secret <header value>
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.pki import ensure_pki, key_id
from devstack.signals import until_stopped

log = logging.getLogger("devstack.identity_endpoint")

API_VERSION = "2019-08-01"
TOKEN_PATH = "/msi/token"
#: Resources a local managed identity can get tokens for (the ones the app uses in Azure).
RESOURCES = ("https://communication.azure.com", "https://storage.azure.com")
#: The audience of an Entra token that ACS accepts for the Teams user exchange.
TEAMS_EXCHANGE_AUDIENCE = "https://auth.msft.communication.azure.com"

DEFAULT_TENANT_ID = "72f988bf-0000-4000-8000-00000000d0c1"
DEFAULT_PRINCIPAL_ID = "5f0c1a9e-0000-4000-8000-0000000001d1"
DEFAULT_CLIENT_ID = "0b7e1c4a-0000-4000-8000-0000000000c1"


@dataclass(frozen=True)
class IdentityEndpointConfig:
    """What the endpoint needs. ``secret`` is the X-IDENTITY-HEADER value clients must send."""

    signing_key_pem: bytes
    secret: str
    tenant_id: str = DEFAULT_TENANT_ID
    #: The object id of the (system-assigned) managed identity: ``oid`` and ``sub`` of its tokens.
    principal_id: str = DEFAULT_PRINCIPAL_ID
    #: Its client id (``appid``); a request naming another client_id gets that one instead,
    #: as a user-assigned identity would.
    client_id: str = DEFAULT_CLIENT_ID
    token_lifetime_seconds: int = 3600
    resources: tuple[str, ...] = field(default=RESOURCES)


def normalise_resource(resource: str) -> str:
    """``https://communication.azure.com//.default`` / ``…/`` / bare → ``https://communication.azure.com``."""
    value = resource.strip()
    if value.endswith("/.default"):
        value = value[: -len("/.default")]
    return value.rstrip("/")


class TokenSigner:
    """Signs JWTs with the dev stack's identity key; the parsed key is cached for speed."""

    def __init__(self, private_key_pem: bytes, issuer: str) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the identity signing key must be an RSA private key")
        self._key = key
        public = key.public_key()
        self.public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = key_id(self.public_pem)
        self.issuer = issuer

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()

        def b64(number: int) -> str:
            raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": b64(numbers.n), "e": b64(numbers.e)}]}


def _app_service_error(status: int, message: str) -> web.Response:
    # The shape App Service's endpoint answers with; msal reads statusCode and message.
    return web.json_response({"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}, status=status)


def create_app(config: IdentityEndpointConfig) -> web.Application:
    """The identity endpoint as an aiohttp application (serve it over plain http on loopback)."""
    signer = TokenSigner(config.signing_key_pem, f"https://sts.windows.net/{config.tenant_id}/")
    allowed = {normalise_resource(r) for r in config.resources}

    async def token(request: web.Request) -> web.Response:
        supplied = request.headers.get("X-IDENTITY-HEADER")
        if supplied is None:
            return _app_service_error(400, "The X-IDENTITY-HEADER header is required.")
        if not secrets.compare_digest(supplied.encode(), config.secret.encode()):
            return _app_service_error(401, "The X-IDENTITY-HEADER header is not valid.")
        query = request.query
        if query.get("api-version") != API_VERSION:
            return _app_service_error(400, f"api-version must be {API_VERSION}.")
        resource = query.get("resource", "")
        audience = normalise_resource(resource)
        if not resource or audience not in allowed:
            return _app_service_error(400, "The requested resource is not available to this identity.")
        client_id = query.get("client_id") or config.client_id
        now = int(time.time())
        expires_on = now + config.token_lifetime_seconds
        claims = {
            "aud": audience,
            "iss": signer.issuer,
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "appid": client_id,
            "appidacr": "2",
            "idtyp": "app",
            "oid": config.principal_id,
            "sub": config.principal_id,
            "tid": config.tenant_id,
            "ver": "1.0",
            "uti": uuid.uuid4().hex,
        }
        body = {
            "access_token": signer.sign(claims),
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def entra_user_token(request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            oid = str(payload["oid"])
            app_id = str(payload["appId"])
            lifetime = int(payload.get("expiresInSeconds") or 3600)
        except (ValueError, KeyError, TypeError):
            return web.json_response(
                {"error": {"code": "BadRequest", "message": 'Send {"oid": "...", "appId": "...", "expiresInSeconds"?: n}.'}},
                status=400,
            )
        now = int(time.time())
        claims = {
            "aud": TEAMS_EXCHANGE_AUDIENCE,
            "iss": signer.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": app_id,
            "oid": oid,
            "sub": oid,
            "tid": config.tenant_id,
            "scp": "Teams.ManageCalls Teams.ManageChats",
            "ver": "1.0",
            "uti": uuid.uuid4().hex,
        }
        return web.json_response({"token": signer.sign(claims)}, headers={"Cache-Control": "no-store"})

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response(signer.jwks())

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    app = web.Application()
    app.router.add_get(TOKEN_PATH, token)
    app.router.add_post("/_local/entra-user-token", entra_user_token)
    app.router.add_get("/_local/jwks", jwks)
    app.router.add_get("/_local/health", health)
    return app


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.identity_endpoint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7092)
    parser.add_argument("--state-dir", type=Path, default=Path(".devstack"), help="where the dev stack's PKI lives")
    parser.add_argument(
        "--secret",
        default=os.environ.get("IDENTITY_HEADER"),
        help="the X-IDENTITY-HEADER value to require (default: $IDENTITY_HEADER)",
    )
    parser.add_argument("--tenant-id", default=DEFAULT_TENANT_ID)
    parser.add_argument("--principal-id", default=DEFAULT_PRINCIPAL_ID)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--quiet", action="store_true", help="no access log")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("--secret (or IDENTITY_HEADER in the environment) is required")
    return args


async def _serve(args: argparse.Namespace) -> None:
    pki = ensure_pki(args.state_dir)
    config = IdentityEndpointConfig(
        signing_key_pem=pki.signing_key.read_bytes(),
        secret=args.secret,
        tenant_id=args.tenant_id,
        principal_id=args.principal_id,
        client_id=args.client_id,
    )
    runner = web.AppRunner(create_app(config), access_log=None if args.quiet else log)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    print(f"identity endpoint ready on http://{args.host}:{args.port}{TOKEN_PATH}", flush=True)
    try:
        await until_stopped()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = _parse_args(argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
