"""A tiny OIDC issuer on this machine, so bearer-token sign-in can be exercised end to end
(discovery, JWKS, real RS256 signatures) without an identity provider on the internet.

Endpoints:
  GET  /.well-known/openid-configuration   discovery document
  GET  /jwks                                public keys (every key ever used by this process)
  POST /_local/token                        mint an access token:
       {"sub", "aud", "roles"?, "expiresInSeconds"?, "nbf"?, "alg"?, "iss"?, "claims"?,
        "typ"? (default "at+jwt"; null for none), "clientId"? (default "local-client"; null for none)}
       An ID token is the same call with "typ": "JWT", "clientId": null, the client as "aud" and
       a "nonce" or "at_hash" in "claims".
  POST /_local/rotate                       sign with a new key from now on (old keys stay listed)
  PUT  /_local/latency                      {"seconds": n}: answer discovery and JWKS n seconds late
                                            (a slow issuer, for deadline tests; 0 restores)

It has no sign-in at all, which is why it listens on 127.0.0.1 and is never deployed.
Keys are generated at start; tokens from an earlier run do not verify.

    python -m devstack.oidc_issuer --port 7093     # issuer http://127.0.0.1:7093
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import ssl
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
DEFAULT_PORT = 7093
#: The client app its access tokens say they were issued to (RFC 9068 §2.2 client_id).
DEFAULT_CLIENT_ID = "local-client"
#: RFC 9068 §2.1: access tokens are typed "at+jwt".
ACCESS_TOKEN_TYPE = "at+jwt"


class LocalIssuer:
    """Keys, token minting and a count of requests per path (tests check how often keys are
    fetched). ``issuer`` may be left None until the port is known; see ``start``."""

    def __init__(self, issuer: str | None = None) -> None:
        self.issuer = issuer.rstrip("/") if issuer else None
        self.requests: Counter[str] = Counter()
        #: Added before answering discovery and JWKS requests.
        self.latency_seconds = 0.0
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self.rotate()

    @property
    def kid(self) -> str:
        """The id of the key that signs new tokens."""
        return self._keys[-1][0]

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        return self._keys[-1][1]

    def rotate(self) -> str:
        """Start signing with a new key; earlier keys stay in the JWKS, as real issuers do."""
        kid = secrets.token_hex(8)
        self._keys.append((kid, rsa.generate_private_key(public_exponent=65537, key_size=2048)))
        return kid

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        }

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private_key in self._keys:
            key = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
            keys.append({**key, "kid": kid, "use": "sig"})
        return {"keys": keys}

    def mint(
        self,
        sub: str,
        aud: str | list[str],
        *,
        roles: list[str] | None = None,
        expires_in_seconds: int = 3600,
        nbf: float | None = None,
        alg: str = "RS256",
        iss: str | None = None,
        claims: dict[str, Any] | None = None,
        typ: str | None = ACCESS_TOKEN_TYPE,
        client_id: str | None = DEFAULT_CLIENT_ID,
    ) -> str:
        """A signed access token (RFC 9068 shape: typ at+jwt, client_id). Past expiry, future nbf,
        another iss, or an ID token's shape (typ/client_id None) are allowed: tests need them."""
        if alg not in SIGNING_ALGORITHMS:
            raise ValueError(f"alg must be one of {SIGNING_ALGORITHMS}")
        now = int(time.time())
        payload: dict[str, Any] = {**(claims or {}), "iss": iss or self.issuer, "sub": sub, "aud": aud}
        payload.setdefault("iat", now)
        payload["exp"] = now + int(expires_in_seconds)
        if client_id is not None:
            payload.setdefault("client_id", client_id)
        if roles is not None:
            payload["roles"] = roles
        if nbf is not None:
            payload["nbf"] = nbf
        headers: dict[str, Any] = {"kid": self.kid}
        if typ is not None:
            headers["typ"] = typ
        return jwt.encode(payload, self.private_key, algorithm=alg, headers=headers)


ISSUER = web.AppKey("issuer", LocalIssuer)


def _issuer_of(request: web.Request) -> LocalIssuer:
    issuer = request.app[ISSUER]
    issuer.requests[request.path] += 1
    if issuer.issuer is None:  # started without a fixed URL: it is whatever address was asked
        issuer.issuer = f"{request.scheme}://{request.host}"
    return issuer


async def _discovery(request: web.Request) -> web.Response:
    issuer = _issuer_of(request)
    await asyncio.sleep(issuer.latency_seconds)
    return web.json_response(issuer.discovery())


async def _jwks(request: web.Request) -> web.Response:
    issuer = _issuer_of(request)
    await asyncio.sleep(issuer.latency_seconds)
    return web.json_response(issuer.jwks())


async def _latency(request: web.Request) -> web.Response:
    issuer = request.app[ISSUER]
    try:
        seconds = (await request.json())["seconds"]
    except (ValueError, KeyError, TypeError):
        return _bad('send {"seconds": n}')
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 60:
        return _bad("seconds must be a number from 0 to 60")
    issuer.latency_seconds = float(seconds)
    return web.json_response({"seconds": issuer.latency_seconds})


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"code": "InvalidRequest", "message": message}}, status=400)


async def _token(request: web.Request) -> web.Response:
    issuer = _issuer_of(request)
    try:
        body = await request.json()
    except ValueError:
        return _bad("body must be JSON")
    if not isinstance(body, dict):
        return _bad("body must be a JSON object")
    sub, aud, roles = body.get("sub"), body.get("aud"), body.get("roles")
    if not isinstance(sub, str) or not sub:
        return _bad("sub must be a non-empty string")
    if not (isinstance(aud, str) and aud) and not (isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud)):
        return _bad("aud must be a string or a list of strings")
    if roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
        return _bad("roles must be a list of strings")
    expires = body.get("expiresInSeconds", 3600)
    nbf = body.get("nbf")
    if not isinstance(expires, int) or isinstance(expires, bool):
        return _bad("expiresInSeconds must be an integer (negative for an expired token)")
    if nbf is not None and (not isinstance(nbf, (int, float)) or isinstance(nbf, bool)):
        return _bad("nbf must be a number of seconds since the epoch")
    claims = body.get("claims")
    if claims is not None and not isinstance(claims, dict):
        return _bad("claims must be an object")
    iss = body.get("iss")
    if iss is not None and not isinstance(iss, str):
        return _bad("iss must be a string")
    typ = body.get("typ", ACCESS_TOKEN_TYPE)
    client_id = body.get("clientId", DEFAULT_CLIENT_ID)
    if (typ is not None and not isinstance(typ, str)) or (client_id is not None and not isinstance(client_id, str)):
        return _bad("typ and clientId must be strings or null")
    try:
        token = issuer.mint(
            sub, aud, roles=roles, expires_in_seconds=expires, nbf=nbf, alg=body.get("alg", "RS256"), iss=iss, claims=claims,
            typ=typ, client_id=client_id,
        )
    except ValueError as error:
        return _bad(str(error))
    return web.json_response({"token": token, "kid": issuer.kid})


async def _rotate(request: web.Request) -> web.Response:
    return web.json_response({"kid": _issuer_of(request).rotate()})


def create_app(issuer: str | LocalIssuer | None = None) -> web.Application:
    """The issuer as an aiohttp application. ``issuer`` is its URL (e.g. http://127.0.0.1:7093),
    a ``LocalIssuer`` to share with a test, or None to take the URL from the first request."""
    app = web.Application()
    app[ISSUER] = issuer if isinstance(issuer, LocalIssuer) else LocalIssuer(issuer)
    app.router.add_get("/.well-known/openid-configuration", _discovery)
    app.router.add_get("/jwks", _jwks)
    app.router.add_post("/_local/token", _token)
    app.router.add_post("/_local/rotate", _rotate)
    app.router.add_put("/_local/latency", _latency)
    return app


@dataclass
class RunningIssuer:
    """A started issuer: its URL, its state, and how to stop it."""

    url: str
    issuer: LocalIssuer
    runner: web.AppRunner

    async def close(self) -> None:
        await self.runner.cleanup()


async def start(host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None) -> RunningIssuer:
    """Start the issuer in this event loop; port 0 picks a free port. With ``ssl_context`` it
    serves https (the issuer URL then starts with https://), as a real issuer would."""
    local = LocalIssuer()
    runner = web.AppRunner(create_app(local), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound_port = runner.addresses[0][1]
    url_host = f"[{host}]" if ":" in host else host
    local.issuer = f"{'https' if ssl_context else 'http'}://{url_host}:{bound_port}"
    return RunningIssuer(url=local.issuer, issuer=local, runner=runner)


async def _serve(host: str, port: int) -> None:
    running = await start(host, port)
    print(f"OIDC issuer {running.url} (discovery {running.url}/.well-known/openid-configuration)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
