"""Who is calling: turns a request's headers into a ``Caller`` with a stable app user id.

Two sources are understood (see the API's "Who the caller is"):

* ``x-ms-client-principal``: base64 JSON set by Static Web Apps or App Service authentication.
  It is believed only when ``TRUST_CLIENT_PRINCIPAL`` is on AND the platform says App Service
  authentication is enabled for this app (``WEBSITE_AUTH_ENABLED``, which App Service injects:
  learn.microsoft.com/azure/app-service/reference-app-settings). Only then does the platform
  strip client-sent principal headers: "External requests aren't allowed to set these headers,
  so they're present only if App Service sets them" (learn.microsoft.com/azure/app-service/
  configure-authentication-user-identities). With the setting on but the signal absent, a
  principal header is refused (401 PlatformAuthenticationOff) rather than believed; with the
  setting off it is ignored as if absent.
* ``Authorization: Bearer <jwt>``: an OIDC token verified by ``shared.oidc`` against the
  configured issuer, audience and algorithms.

When both are present, a trusted principal wins: the platform vouched for it, while the bearer
token is something the browser chose to send. A trusted principal that is present but malformed
is refused outright rather than skipped, since the platform does not send broken principals and
falling back to another identity would hide the problem.

The ids are provider-qualified (``github|abc123``, ``https://issuer|sub``) so two providers'
users can never share an id. Microsoft Entra bearer callers are ``entra:<tid>|<oid>``: Entra's
``sub`` is pairwise, different for each client app, while the object id is the same user across
every app of the tenant ("oid ... two different applications signing in the same user receive the
same value", learn.microsoft.com/entra/identity-platform/id-token-claims-reference and
access-token-claims-reference), so one person keeps one ACS identity whatever app they use. Nothing here ever puts a token or a principal in a message or log.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from shared.errors import Unauthenticated
from shared.headers import header
from shared.settings import Settings
from shared.text import is_clean
from shared.ttl_cache import TtlCache

if TYPE_CHECKING:
    from shared import oidc

PRINCIPAL_HEADER = "x-ms-client-principal"
PRINCIPAL_IDP_HEADER = "x-ms-client-principal-idp"
AUTHORIZATION_HEADER = "authorization"

#: Real principals are a few hundred bytes to a few KB; anything larger is not one.
MAX_PRINCIPAL_HEADER_CHARS = 8 * 1024
MAX_USER_ID_CHARS = 512
MAX_ROLE_CHARS = 128

#: Principals read recently, by their exact header value: a signed-in user sends the same header
#: on every request, and reading it (base64, JSON, every character of every field checked) cost
#: about 50 µs of the instance's CPU per request under P6's load, more than any other step of the
#: service's own. The value read from a given header never changes, so this is never stale; the
#: TTL and bound only limit memory (headers are at most MAX_PRINCIPAL_HEADER_CHARS).
_PRINCIPALS: "TtlCache[tuple[Caller | None]]" = TtlCache(ttl_seconds=600, max_entries=4096)

#: Providers become the prefix of an id, so they must not contain the "|" separator.
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

#: Easy Auth claim types that carry the user id, most preferred first. The object id comes first
#: because App Service itself uses it as the principal id for Microsoft Entra ID.
_USER_ID_CLAIMS = (
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
    "sub",
)
_DEFAULT_ROLE_CLAIMS = frozenset({"roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})

MISSING_CALLER = "MissingCaller"
INVALID_PRINCIPAL = "InvalidPrincipal"
INVALID_BEARER = "InvalidBearerToken"
PLATFORM_AUTH_OFF = "PlatformAuthenticationOff"

#: Said to header callers (and by /api/health) when the principal header cannot be trusted.
PLATFORM_AUTH_OFF_MESSAGE = (
    "TRUST_CLIENT_PRINCIPAL is on, but App Service authentication is not enabled for this app "
    "(WEBSITE_AUTH_ENABLED is not True), so the principal header could have been sent by anyone"
)

#: Easy Auth claim types of the Entra tenant id and object id.
_TENANT_CLAIMS = ("http://schemas.microsoft.com/identity/claims/tenantid", "tid")
_OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")

#: Hosts of Microsoft Entra issuers (public and national clouds): their bearer callers are keyed by
#: tid + oid under OIDC_USER_KEY=auto. v1 tokens are issued by sts.windows.net (global and US
#: Government) and sts.chinacloudapi.cn (Azure China), v2 tokens by login.microsoftonline.com,
#: login.microsoftonline.us and login.partner.microsoftonline.cn
#: (learn.microsoft.com/en-us/answers/questions/1190472, "token issuers for the sovereign cloud").
ENTRA_ISSUER_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.partner.microsoftonline.cn",
        "login.chinacloudapi.cn",
        "sts.chinacloudapi.cn",
    }
)

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ISSUER_PREFIX = re.compile(r"https?://[^|\s]{1,500}")
_ENTRA_PREFIX = re.compile(r"entra:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_app_user_id(value: object) -> bool:
    """Whether ``value`` has the shape of an id this module makes: ``<provider>|<user id>``,
    ``<issuer URL>|<sub>`` or ``entra:<tid>|<oid>``, with a user id that is not blank, not too
    long and free of control, format (bidi) and lone-surrogate characters."""
    if not isinstance(value, str) or len(value) > 1100:
        return False
    prefix, separator, user_id = value.partition("|")
    if not separator or not user_id.strip() or len(user_id) > MAX_USER_ID_CHARS or not is_clean(value):
        return False
    return bool(_PROVIDER.fullmatch(prefix) or _ISSUER_PREFIX.fullmatch(prefix) or _ENTRA_PREFIX.fullmatch(prefix))


@dataclass(frozen=True)
class Caller:
    """The app user making a request."""

    #: Stable and provider-qualified: "<provider>|<user id>" for client principals,
    #: "<issuer>|<sub>" for bearer tokens. Case-sensitive.
    app_user_id: str
    #: From userRoles (Static Web Apps), role claims (Easy Auth) or the "roles" claim (OIDC).
    roles: frozenset[str]
    #: "client-principal" or "bearer".
    source: str
    #: The principal's identity provider ("github", "aad", ...) or the bearer token's issuer.
    provider: str = ""
    #: Microsoft Entra tenant and object id, when the platform or the token says them.
    tenant_id: str | None = None
    object_id: str | None = None
    #: A bearer token's e-mail address (for ACCESS_ALLOWED_EMAIL_DOMAINS), when it has one.
    email: str | None = None


class _Malformed(Exception):
    """A principal that is present but cannot be read; the message says why, without content."""


def _text(value: Any, what: str, limit: int) -> str:
    if value is None:
        raise _Malformed(f"{what} is missing")
    if not isinstance(value, str):
        raise _Malformed(f"{what} is not a string")
    if not value.strip():
        raise _Malformed(f"{what} is empty")
    if len(value) > limit:
        raise _Malformed(f"{what} is too long")
    if not ((value.isascii() and value.isprintable()) or is_clean(value)):  # printable ASCII has none of them
        raise _Malformed(f"{what} contains control characters")
    return value


_MAX_PROVIDER = 64


def _provider(value: Any, what: str) -> str:
    provider = _text(value, what, _MAX_PROVIDER).strip().lower()
    if not _PROVIDER.fullmatch(provider):
        raise _Malformed(f"{what} is not a provider name")
    return provider


def _roles(values: Any, what: str) -> frozenset[str]:
    if values is None:
        return frozenset()
    if not isinstance(values, list):
        raise _Malformed(f"{what} is not a list")
    return frozenset(_text(role, f"a role in {what}", MAX_ROLE_CHARS) for role in values)


def _decode(raw: str) -> dict[str, Any]:
    """Base64 (standard or URL-safe, padding optional) JSON object."""
    if len(raw) > MAX_PRINCIPAL_HEADER_CHARS:
        raise _Malformed("the principal header is too long")
    compact = raw.strip().rstrip("=")
    if not compact:
        raise _Malformed("the principal header is empty")
    padded = compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(padded, validate=True)
        document = json.loads(data.decode("utf-8"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _Malformed("the principal header is not base64-encoded JSON") from None
    except RecursionError:
        raise _Malformed("the principal header is nested too deeply") from None
    if not isinstance(document, dict):
        raise _Malformed("the principal is not a JSON object")
    return document


def _static_web_apps(principal: dict[str, Any]) -> Caller | None:
    """{identityProvider, userId, userDetails, userRoles}; None for an anonymous principal."""
    roles = _roles(principal.get("userRoles"), "userRoles")
    user_id = principal.get("userId")
    provider = principal.get("identityProvider")
    if (isinstance(provider, str) and provider.lower() == "anonymous") or (user_id in (None, "") and roles == {"anonymous"}):
        return None
    provider = _provider(provider, "identityProvider")
    user_id = _text(user_id, "userId", MAX_USER_ID_CHARS)
    return Caller(app_user_id=f"{provider}|{user_id}", roles=roles, source="client-principal", provider=provider)


def _easy_auth(principal: dict[str, Any], idp_header: str | None) -> Caller:
    """{auth_typ, claims: [{typ, val}], name_typ, role_typ} from App Service authentication."""
    claims = principal.get("claims")
    if not isinstance(claims, list):
        raise _Malformed("claims is not a list")
    by_type: dict[str, list[str]] = {}
    for claim in claims:
        if not isinstance(claim, dict) or not isinstance(claim.get("typ"), str) or not isinstance(claim.get("val"), str):
            raise _Malformed("a claim is not {typ, val} strings")
        by_type.setdefault(claim["typ"], []).append(claim["val"])

    role_typ = principal.get("role_typ")
    if role_typ is not None and not isinstance(role_typ, str):
        raise _Malformed("role_typ is not a string")
    role_types = _DEFAULT_ROLE_CLAIMS | ({role_typ} if role_typ else set())
    roles = _roles([v for t in role_types for v in by_type.get(t, [])], "the role claims")

    auth_typ = principal.get("auth_typ")
    provider = _provider(auth_typ if auth_typ not in (None, "") else idp_header, "auth_typ")
    user_id = next((by_type[t][0] for t in _USER_ID_CLAIMS if by_type.get(t)), None)
    if user_id is None:
        raise _Malformed("no claim carries a user id")
    user_id = _text(user_id, "the user id claim", MAX_USER_ID_CHARS)
    tenant_id = next((by_type[t][0].lower() for t in _TENANT_CLAIMS if by_type.get(t)), None)
    object_id = next((by_type[t][0].lower() for t in _OBJECT_ID_CLAIMS if by_type.get(t)), None)
    return Caller(
        app_user_id=f"{provider}|{user_id}",
        roles=roles,
        source="client-principal",
        provider=provider,
        tenant_id=tenant_id if tenant_id and _GUID.fullmatch(tenant_id) else None,
        object_id=object_id if object_id and _GUID.fullmatch(object_id) else None,
    )


def caller_from_client_principal(raw: str, idp_header: str | None = None) -> Caller | None:
    """The caller named by an ``x-ms-client-principal`` value, or None for an anonymous one.

    Raises ``Unauthenticated`` (InvalidPrincipal) for anything malformed, and nothing else.
    """
    if idp_header is not None and len(idp_header) > _MAX_PROVIDER:
        # No provider name is this long: read it afresh, never remembered, so the memory's
        # size stays bounded by the principal header's own limit.
        return _read_principal(raw, idp_header)
    key = (raw, idp_header)
    known = _PRINCIPALS.get(key)
    if known is not None:
        return known[0]
    caller = _read_principal(raw, idp_header)
    _PRINCIPALS.put(key, (caller,))  # only what was read without error: a malformed one is refused each time
    return caller


def _read_principal(raw: str, idp_header: str | None) -> Caller | None:
    try:
        principal = _decode(raw)
        if "identityProvider" in principal or "userId" in principal or "userRoles" in principal:
            return _static_web_apps(principal)
        if "claims" in principal or "auth_typ" in principal:
            return _easy_auth(principal, idp_header)
        raise _Malformed("the principal has neither the Static Web Apps nor the App Service shape")
    except _Malformed as problem:
        raise Unauthenticated(f"The client principal is not valid: {problem}", code=INVALID_PRINCIPAL) from None


def _bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None for no header or another scheme."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


async def identify_caller(headers: Mapping[str, str], settings: Settings) -> Caller:
    """The caller of a request, from its headers (trusted client principal first, then bearer).

    Raises ``Unauthenticated`` with code MissingCaller, InvalidPrincipal or InvalidBearerToken;
    ``DependencyUnavailable`` when the token issuer cannot be reached to check a bearer token.
    """
    if settings.trust_client_principal:
        raw = header(headers, PRINCIPAL_HEADER)
        if raw is not None:
            if not settings.platform_auth_enabled:
                raise Unauthenticated(PLATFORM_AUTH_OFF_MESSAGE + ".", code=PLATFORM_AUTH_OFF)
            caller = caller_from_client_principal(raw, header(headers, PRINCIPAL_IDP_HEADER))
            if caller is not None:
                return caller

    token = _bearer_token(header(headers, AUTHORIZATION_HEADER))
    if token is None:
        raise Unauthenticated("Sign in first: the request carries no caller identity", code=MISSING_CALLER)
    if not (settings.oidc_issuer and settings.oidc_audience):
        raise Unauthenticated(
            "Bearer tokens are not configured for this service (no OIDC issuer is set)", code=INVALID_BEARER
        )
    from shared import oidc  # PyJWT and its crypto load on the first bearer token, not at import

    verified = await oidc.verify_bearer_token(
        token,
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        algorithms=settings.oidc_algorithms,
        max_lifetime_seconds=settings.oidc_max_token_lifetime_minutes * 60,
    )
    return Caller(
        app_user_id=_bearer_user_id(verified, settings.oidc_user_key),
        roles=verified.roles,
        source="bearer",
        provider=verified.issuer,
        tenant_id=verified.tenant_id,
        object_id=verified.object_id,
        email=verified.email,
    )


def is_entra_issuer(issuer: str) -> bool:
    """Whether a token issuer is Microsoft Entra ID (by its host)."""
    try:
        return (urlsplit(issuer).hostname or "") in ENTRA_ISSUER_HOSTS
    except ValueError:
        return False


def _bearer_user_id(verified: "oidc.VerifiedToken", user_key: str) -> str:
    """``entra:<tid>|<oid>`` for Entra (stable across client apps), ``<issuer>|<sub>`` otherwise."""
    if user_key == "tid+oid" or (user_key == "auto" and is_entra_issuer(verified.issuer)):
        if not (verified.tenant_id and verified.object_id and _GUID.fullmatch(verified.tenant_id)
                and _GUID.fullmatch(verified.object_id)):
            raise Unauthenticated("The bearer token lacks the tid and oid claims that name an Entra user", code=INVALID_BEARER)
        return f"entra:{verified.tenant_id}|{verified.object_id}"
    return f"{verified.issuer}|{verified.subject}"


async def close() -> None:
    """Release the bearer-token verifier's HTTP session and key cache (tests; shutdown)."""
    from shared import oidc

    await oidc.close()
