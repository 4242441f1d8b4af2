"""Verifies OIDC bearer tokens (JWTs) against one configured issuer.

The issuer's signing keys come from OIDC discovery (``{issuer}/.well-known/openid-configuration``)
and its ``jwks_uri``, fetched over one long-lived aiohttp session and cached in the process, so
a busy function app asks the issuer for keys about once an hour rather than once per request.

Why the cache behaves as it does:

* A token whose ``kid`` is not in the cache makes the keys be fetched again (the issuer rotated
  them), but at most once a minute: anyone can mint tokens with random ``kid``s, and each must not
  turn into a request to the issuer.
* Concurrent requests that find the cache empty share one fetch instead of each making their own.
* If the issuer cannot be reached, a caller gets ``DependencyUnavailable`` (503, try again), not
  401: the token may well be good. Keys that expired from the cache keep being used for a while
  when a refresh fails, because the issuer being briefly down should not sign everyone out.
* The algorithm is taken from the configured allow-list only and must fit the key's type, so
  ``alg: none`` and the HS256-with-the-public-key trick cannot work.
* Only access tokens are accepted; an ID token is proof of a sign-in for the client that asked
  for it, not a grant to call this API. What tells them apart:
  - ``nonce``, ``at_hash``, ``c_hash`` and ``s_hash`` are ID token claims (OpenID Connect Core
    1.0 §2, §3.1.3.6, §3.3.2.11; https://openid.net/specs/openid-connect-core-1_0.html);
  - RFC 9068 §2.1 types access tokens ``at+jwt`` (https://www.rfc-editor.org/rfc/rfc9068); any
    other ``typ`` but plain ``JWT`` (which Microsoft Entra's access tokens carry) is refused;
  - an access token names the client it was issued to (``client_id``, RFC 9068 §2.2; ``azp`` in
    Entra v2 tokens, ``appid`` in v1; learn.microsoft.com/entra/identity-platform/
    access-token-claims-reference), while an ID token's audience *is* that client (OIDC Core §2).
    A token without a client claim, or whose client is its own audience without any ``scp`` /
    ``scope`` grant, is an ID token.
* A token valid for longer than ``OIDC_MAX_TOKEN_LIFETIME_MINUTES`` (from its ``iat``) is
  refused: a stolen ten-year token must not be a ten-year key. ``iat`` is required (RFC 9068 §2.2
  makes it a required claim of a JWT access token), and ``exp``, ``iat`` and ``nbf`` must be JSON
  numbers (RFC 7519 §2 NumericDate): PyJWT accepts anything ``int()`` takes, the string
  ``"4102444800"`` included, so a check that only looks at numbers would not see the string.
* An address counts for the e-mail domain allow-list only when the issuer did not disown it:
  ``email_verified`` anything but ``true`` (when present) is unverified (OIDC Core §5.1 types it
  a JSON boolean, so ``"false"`` is not ``true``); and ``preferred_username`` / ``upn`` are taken
  as an address only from Microsoft Entra, whose ``upn`` / v2 ``preferred_username`` is the
  user's sign-in name in the tenant. Elsewhere ``preferred_username`` is a name the person chose
  ("MUST NOT rely upon this value being unique", OIDC Core §5.1), not an address anyone checked.

This module knows JWTs and the issuer's HTTP endpoints; it knows nothing of requests or users.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit

import aiohttp
import jwt

from shared.caller import is_entra_issuer
from shared.errors import DependencyUnavailable, Unauthenticated
from shared.settings import SettingsError
from shared.text import is_clean

logger = logging.getLogger(__name__)

#: Clock skew tolerated on ``exp`` and ``nbf``.
LEEWAY_SECONDS = 60
#: How long fetched keys are used before they are fetched again.
KEYS_TTL_SECONDS = 3600
#: Fewest seconds between two fetches prompted by unknown ``kid``s (defence against kid spam).
UNKNOWN_KID_REFRESH_SECONDS = 60
#: After a failed fetch, requests fail fast for this long instead of each waiting on the issuer.
FAILURE_BACKOFF_SECONDS = 5
#: How long expired keys stand in when the issuer cannot be reached to refresh them.
MAX_STALE_SECONDS = 24 * 3600
#: Timeout for one discovery or JWKS request.
HTTP_TIMEOUT_SECONDS = 5
#: Discovery documents and key sets are small; anything bigger is not one.
MAX_DOCUMENT_BYTES = 512 * 1024
#: Tokens with many group claims can be large, but not this large.
MAX_TOKEN_CHARS = 16 * 1024

INVALID_BEARER = "InvalidBearerToken"

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_CURVE_FOR_ALGORITHM = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def _monotonic() -> float:
    """The cache's clock (a function so tests can move time without sleeping)."""
    return time.monotonic()


@dataclass(frozen=True)
class VerifiedToken:
    """The parts of a verified token the service relies on."""

    issuer: str
    subject: str
    roles: frozenset[str]
    #: Microsoft Entra's tenant id and object id (``tid``, ``oid``) when the token carries them.
    tenant_id: str | None = None
    object_id: str | None = None
    #: The ``email`` claim (for Microsoft Entra, else ``preferred_username`` / ``upn``) when it
    #: looks like an address and the issuer did not say anything but ``email_verified: true``.
    email: str | None = None


@dataclass
class _IssuerKeys:
    """What is known about one issuer: where its keys live and the keys last fetched."""

    issuer: str
    jwks_uri: str | None = None
    #: The ``iss`` the issuer's own discovery document states (the configured issuer, modulo a
    #: trailing slash); tokens must carry exactly this.
    token_issuer: str | None = None
    keys: list[dict[str, Any]] | None = None
    fetched_at: float = float("-inf")
    attempted_at: float = float("-inf")
    failed_at: float = float("-inf")
    prepared: dict[tuple[str | None, str], jwt.PyJWK] = field(default_factory=dict)
    inflight: asyncio.Task[None] | None = None


_issuers: dict[str, _IssuerKeys] = {}
_http: tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession] | None = None


def _bad_token(message: str) -> Unauthenticated:
    return Unauthenticated(message, code=INVALID_BEARER)


def _is_allowed_url(url: str) -> bool:
    """HTTPS, or plain http to this machine (the local issuer used in development)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS


def _ssl_context() -> ssl.SSLContext:
    """Trust SSL_CERT_FILE when set (the local CA in development), the system store otherwise."""
    cafile = os.environ.get("SSL_CERT_FILE") or None
    return ssl.create_default_context(cafile=cafile)


def _session() -> aiohttp.ClientSession:
    """The process's session, created on first use. A session belongs to one event loop; the
    Functions host runs one, but a test runner may start a new one per test, so a session from
    another loop is replaced rather than reused."""
    global _http
    loop = asyncio.get_running_loop()
    if _http is not None and _http[0] is loop and not _http[1].closed:
        return _http[1]
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=_ssl_context()),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS),
        headers={"Accept": "application/json"},
    )
    _http = (loop, session)
    return session


async def close() -> None:
    """Close the HTTP session and forget every cached key (tests; orderly shutdown)."""
    global _http
    http, _http = _http, None
    _issuers.clear()
    if http is not None and not http[1].closed:
        try:
            if http[0] is asyncio.get_running_loop():
                await http[1].close()
        except RuntimeError:  # no running loop: nothing can be awaited, drop it
            pass


async def _get_json(url: str, what: str) -> dict[str, Any]:
    """GET a small JSON object; any failure is the issuer being unavailable, not the caller's."""
    try:
        async with _session().get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise DependencyUnavailable(f"The token issuer's {what} answered HTTP {response.status}")
            body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
        raise DependencyUnavailable(f"The token issuer's {what} could not be reached ({type(error).__name__})") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DependencyUnavailable(f"The token issuer's {what} is too large")
    try:
        document = json.loads(body)
    except ValueError:
        raise DependencyUnavailable(f"The token issuer's {what} is not JSON") from None
    if not isinstance(document, dict):
        raise DependencyUnavailable(f"The token issuer's {what} is not a JSON object")
    return document


def _usable_keys(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The signature keys of a JWKS; encryption keys and entries that are not keys are skipped."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise DependencyUnavailable("The token issuer's key set has no keys list")
    usable = []
    for key in keys:
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            continue
        if key.get("use", "sig") != "sig":
            continue
        if "kid" in key and not isinstance(key["kid"], str):
            continue
        usable.append(key)
    return usable


async def _fetch(entry: _IssuerKeys, *, rediscover: bool) -> None:
    """Fetch the discovery document (when needed) and the key set into ``entry``."""
    if rediscover or entry.jwks_uri is None:
        discovery = await _get_json(f"{entry.issuer}/.well-known/openid-configuration", "discovery document")
        stated = discovery.get("issuer")
        # The configured issuer has had any trailing slash removed by the settings; the issuer's
        # own statement decides which of the two forms its tokens carry.
        if stated not in (entry.issuer, entry.issuer + "/"):
            logger.error("OIDC discovery document states issuer %r, but OIDC_ISSUER is %r", stated, entry.issuer)
            raise DependencyUnavailable("The token issuer's discovery document names a different issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _is_allowed_url(jwks_uri):
            logger.error("OIDC discovery document has no usable https jwks_uri: %r", jwks_uri)
            raise DependencyUnavailable("The token issuer's discovery document has no usable jwks_uri")
        entry.token_issuer, entry.jwks_uri = stated, jwks_uri
    keys = _usable_keys(await _get_json(entry.jwks_uri, "key set"))
    entry.keys = keys
    entry.prepared = {}
    entry.fetched_at = _monotonic()
    logger.info("Fetched %d signing keys for OIDC issuer %s", len(keys), entry.issuer)


async def _refresh(entry: _IssuerKeys) -> None:
    """Fetch keys once for everyone waiting right now (single flight)."""
    loop = asyncio.get_running_loop()
    task = entry.inflight
    if task is None or task.done() or task.get_loop() is not loop:
        entry.attempted_at = _monotonic()
        expired = entry.fetched_at + KEYS_TTL_SECONDS <= entry.attempted_at
        task = loop.create_task(_fetch(entry, rediscover=expired))
        # Mark the outcome as seen even if every waiter was cancelled (no "never retrieved" noise).
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        entry.inflight = task
    try:
        # shield: one waiter being cancelled must not cancel the fetch the others wait on.
        await asyncio.shield(task)
    except DependencyUnavailable:
        entry.failed_at = _monotonic()
        raise


async def _signing_keys(issuer: str, *, unknown_kid: bool = False) -> tuple[_IssuerKeys, list[dict[str, Any]]]:
    """The issuer's keys, fetched when missing, expired, or (rate-limited) when a kid is unknown."""
    entry = _issuers.get(issuer)
    if entry is None:
        entry = _issuers[issuer] = _IssuerKeys(issuer)
    now = _monotonic()
    if entry.keys is not None:
        age = now - entry.fetched_at
        if unknown_kid:
            if now - entry.attempted_at < UNKNOWN_KID_REFRESH_SECONDS:
                return entry, entry.keys
        elif age < KEYS_TTL_SECONDS:
            return entry, entry.keys
        elif now - entry.failed_at < FAILURE_BACKOFF_SECONDS and age < MAX_STALE_SECONDS:
            return entry, entry.keys
    elif now - entry.failed_at < FAILURE_BACKOFF_SECONDS:
        raise DependencyUnavailable("The token issuer could not be reached a moment ago", retry_after=FAILURE_BACKOFF_SECONDS)
    try:
        await _refresh(entry)
    except DependencyUnavailable:
        if entry.keys is not None and now - entry.fetched_at < MAX_STALE_SECONDS:
            logger.warning("Could not refresh keys of OIDC issuer %s; using the keys fetched before", issuer)
            return entry, entry.keys
        raise
    assert entry.keys is not None
    return entry, entry.keys


def _find_key(keys: list[dict[str, Any]], kid: str | None) -> dict[str, Any] | None:
    if kid is None:
        # Tokens without a kid are acceptable only when there is no doubt which key signed them.
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.get("kid") == kid), None)


def _prepare_key(entry: _IssuerKeys, jwk: dict[str, Any], kid: str | None, algorithm: str) -> jwt.PyJWK:
    """The key bound to ``algorithm``, after checking the pair makes sense (RSA for RS*/PS*, the
    right curve for ES*, and the key's own ``alg`` if it states one)."""
    prepared = entry.prepared.get((kid, algorithm))
    if prepared is not None:
        return prepared
    kty = jwk.get("kty")
    fits = kty == "RSA" if algorithm[:2] in ("RS", "PS") else (kty == "EC" and jwk.get("crv") == _CURVE_FOR_ALGORITHM.get(algorithm))
    if not fits or jwk.get("alg", algorithm) != algorithm:
        raise _bad_token("The bearer token's algorithm does not match its signing key")
    try:
        prepared = jwt.PyJWK(jwk, algorithm=algorithm)
    except (jwt.PyJWTError, ValueError, TypeError):
        logger.warning("OIDC issuer %s publishes a key (kid %r) that cannot be loaded", entry.issuer, kid)
        raise _bad_token("The bearer token's signing key cannot be used") from None
    entry.prepared[(kid, algorithm)] = prepared
    return prepared


def _roles(claims: dict[str, Any]) -> frozenset[str]:
    """The ``roles`` claim as a set; a claim of an unexpected shape grants nothing."""
    roles = claims.get("roles")
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list):
        return frozenset()
    return frozenset(r for r in roles if isinstance(r, str) and r and is_clean(r))


_ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash", "s_hash")
_ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
_CLIENT_CLAIMS = ("client_id", "azp", "appid")


def _require_access_token(header: dict[str, Any], claims: dict[str, Any]) -> None:
    """Refuse ID tokens (and other JWTs that are not access tokens); see the module docstring."""
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES):
        raise _bad_token("The bearer token is not an access token (its typ is not at+jwt or JWT)")
    if any(name in claims for name in _ID_TOKEN_CLAIMS):
        raise _bad_token("The bearer token is an ID token, not an access token: send an access token for this API")
    client = next((claims[c] for c in _CLIENT_CLAIMS if isinstance(claims.get(c), str) and claims[c]), None)
    if client is None:
        raise _bad_token("The bearer token names no client (client_id, azp or appid): it is not an access token")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences if isinstance(audiences, list) else []
    if client in audiences and not (claims.get("scp") or claims.get("scope")):
        raise _bad_token("The bearer token was issued to its own audience with no scope: it is an ID token")


def _is_number(value: Any) -> bool:
    """A JSON number: bool is an int to Python but ``true`` is not a NumericDate."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require_numeric_dates(claims: dict[str, Any]) -> None:
    """``exp`` and ``iat`` (required) and ``nbf`` (when present) are JSON numbers; see the module
    docstring for why PyJWT's own checks are not enough."""
    for name in ("exp", "iat", "nbf"):
        if (name in claims or name != "nbf") and not _is_number(claims.get(name)):
            raise _bad_token(f"The bearer token's {name!r} claim is not a number")


def _check_lifetime(claims: dict[str, Any], max_lifetime_seconds: float) -> None:
    """Called after ``_require_numeric_dates``: ``exp`` and ``iat`` are numbers."""
    if claims["exp"] - claims["iat"] > max_lifetime_seconds + LEEWAY_SECONDS:
        raise _bad_token("The bearer token is valid for longer than this service accepts")


#: Claims that carry an address, by whether the issuer is Microsoft Entra (module docstring).
_ADDRESS_CLAIMS = {True: ("email", "preferred_username", "upn"), False: ("email",)}


def _email(claims: dict[str, Any]) -> str | None:
    if "email_verified" in claims and claims["email_verified"] is not True:
        return None
    for name in _ADDRESS_CLAIMS[is_entra_issuer(str(claims.get("iss", "")))]:
        value = claims.get(name)
        if isinstance(value, str) and value.count("@") == 1 and len(value) <= 320 and is_clean(value):
            return value
    return None


def _optional_text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if isinstance(value, str) and 0 < len(value) <= 64 and is_clean(value):
        return value.lower()
    return None


def _reason(error: Exception) -> str:
    if isinstance(error, jwt.ExpiredSignatureError):
        return "The bearer token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "The bearer token is not valid yet"
    if isinstance(error, jwt.InvalidAudienceError):
        return "The bearer token is not meant for this service"
    if isinstance(error, jwt.InvalidIssuerError):
        return "The bearer token is not from the trusted issuer"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"The bearer token lacks the {error.claim!r} claim"
    if isinstance(error, jwt.exceptions.InvalidSubjectError):
        return "The bearer token's subject is not usable"
    if isinstance(error, jwt.InvalidSignatureError):
        return "The bearer token's signature is not valid"
    return "The bearer token could not be verified"


async def verify_bearer_token(
    token: str,
    *,
    issuer: str,
    audience: str,
    algorithms: Sequence[str],
    max_lifetime_seconds: float = 24 * 3600,
) -> VerifiedToken:
    """Verify ``token`` (signature, ``iss``, ``aud``, ``exp``, ``iat``, ``nbf``, ``sub``), that it is an
    access token, and that it is not valid for longer than ``max_lifetime_seconds``.

    Raises ``Unauthenticated`` (code InvalidBearerToken) for a token that is not good,
    ``DependencyUnavailable`` when the issuer's keys cannot be fetched, and ``SettingsError``
    when ``issuer`` is not an https URL (or http on this machine).
    """
    if not _is_allowed_url(issuer):
        raise SettingsError("OIDC_ISSUER must be an https:// URL (plain http only for 127.0.0.1 or localhost)")
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise _bad_token("The bearer token is empty or too long")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except Exception:  # anything that fails to parse is a bad token, never a server error
        raise _bad_token("The bearer token is not a well-formed JWT") from None

    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in algorithms:
        raise _bad_token("The bearer token's signing algorithm is not accepted")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _bad_token("The bearer token's key id is not a string")
    # Tokens from other issuers are turned away before they can cause any request to the issuer.
    if unverified.get("iss") not in (issuer, issuer + "/"):
        raise _bad_token("The bearer token is not from the trusted issuer")

    entry, keys = await _signing_keys(issuer)
    jwk = _find_key(keys, kid)
    if jwk is None and kid is not None:
        entry, keys = await _signing_keys(issuer, unknown_kid=True)
        jwk = _find_key(keys, kid)
    if jwk is None:
        raise _bad_token("The bearer token was signed by an unknown key")
    key = _prepare_key(entry, jwk, kid, algorithm)

    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=audience,
            issuer=entry.token_issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except Exception as error:  # PyJWTError mostly; whatever else, it is the token that is bad
        raise _bad_token(_reason(error)) from None
    _require_numeric_dates(claims)

    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.strip() or not is_clean(subject) or len(subject) > 512:
        raise _bad_token("The bearer token's subject is not usable")
    _require_access_token(header, claims)
    _check_lifetime(claims, max_lifetime_seconds)
    return VerifiedToken(
        issuer=claims["iss"],
        subject=subject,
        roles=_roles(claims),
        tenant_id=_optional_text(claims, "tid"),
        object_id=_optional_text(claims, "oid"),
        email=_email(claims),
    )
