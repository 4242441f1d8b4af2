"""Who may obtain ACS tokens, with which scopes and for how long, and who may exchange a Teams
token: the deployment's access policy, checked in memory on every token request.

Static Web Apps route rules are not enough on their own: they cannot read the app's settings, the
function app may be reached by other paths (bearer callers), and a policy that lives only in a
file next to the web page is easy to lose. So the function app enforces it itself:

* ``ACCESS_ALLOWED_PROVIDERS`` (default ``aad,github``): identity providers whose principal
  callers may get tokens. Bearer callers come from the one configured ``OIDC_ISSUER``.
* ``ACCESS_REQUIRED_ROLES`` (default ``member``): the caller needs one of these roles, e.g. a
  Static Web Apps role given by invitation, or an Entra app role in the bearer token's ``roles``.
  ``*`` is the explicit "any signed-in user". The default keeps a fresh deployment closed: signing
  in with any GitHub or Microsoft account is not enough to spend the deployer's ACS resource.
* ``ACCESS_ALLOWED_TENANT_IDS`` and ``ACCESS_ALLOWED_EMAIL_DOMAINS`` (default: not checked):
  bearer callers must come from one of these Entra tenants (``tid``) and/or e-mail domains.
* ``TOKEN_ROLE_POLICY``: per-role scopes and longest lifetime (``guest:voip.join:60``). A caller
  with listed roles gets the union of their scopes and the longest of their lifetimes; a caller
  with none of them gets ``ACS_ALLOWED_SCOPES`` up to 1440 minutes.
* The guest policy (``GUEST_SCOPES`` for at most ``GUEST_MAX_MINUTES``, shared/settings.py) is the
  one grant for Teams meeting guests: anonymous people at POST /api/guest/token (only when
  ``GUEST_ACCESS_ENABLED``), and signed-in callers in the ``guest`` role whose other roles the
  role policy does not list. A ``guest`` entry in TOKEN_ROLE_POLICY may narrow it, never widen it
  (settings.py refuses that), so both ways in give a guest the same at most.
* Teams exchange: off unless ``TEAMS_EXCHANGE_ENABLED``; the Teams token's app (``appId``) and
  tenant must be allow-listed, and when the caller is a Microsoft Entra user, the Teams token must
  be theirs (same tenant and object id). Its signature is ACS's to check; this module only reads
  its ``tid`` and ``oid`` to compare them.

Every refusal is a 403 with a code and a sentence the web page can show as it is.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from .caller import Caller, is_entra_issuer
from .errors import Forbidden, InvalidRequest, NotFound
from .settings import ANY, GUEST_MAX_MINUTES, GUEST_ROLE, GUEST_SCOPES, MAX_TOKEN_MINUTES, MIN_TOKEN_MINUTES, Settings

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: A JWT's three base64url parts (Teams tokens are JWTs); anything else is refused before ACS.
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

NOT_ALLOWED_HINT = "Ask the site's owner to invite you (or give your account the role this service needs)."


@dataclass(frozen=True)
class TokenGrant:
    """What one caller may ask for."""

    scopes: frozenset[str]
    max_minutes: int


def _allowed(value: str | None, allowed: frozenset[str]) -> bool:
    return ANY in allowed or (value is not None and value.lower() in allowed)


def admit(caller: Caller, settings: Settings) -> None:
    """Raise ``Forbidden`` unless the caller may obtain ACS tokens at all."""
    if caller.source == "client-principal" and not _allowed(caller.provider, settings.access_allowed_providers):
        raise Forbidden(
            f"Signing in with {caller.provider!r} does not give access to this service. Sign in with another account.",
            code="ProviderNotAllowed",
        )
    if caller.source == "bearer":
        if settings.access_allowed_tenant_ids and not _allowed(caller.tenant_id, settings.access_allowed_tenant_ids):
            raise Forbidden(f"Your organisation's accounts do not have access to this service. {NOT_ALLOWED_HINT}",
                            code="TenantNotAllowed")
        if settings.access_allowed_email_domains:
            domain = caller.email.rsplit("@", 1)[1] if caller.email else None
            if not _allowed(domain, settings.access_allowed_email_domains):
                raise Forbidden(f"Accounts of your e-mail domain do not have access to this service. {NOT_ALLOWED_HINT}",
                                code="EmailDomainNotAllowed")
    required = settings.access_required_roles
    if ANY not in required and not (caller.roles & required):
        raise Forbidden(f"Your account is signed in but not allowed to get communication tokens here. {NOT_ALLOWED_HINT}",
                        code="RoleRequired")


#: What a Teams meeting guest may get, whichever way they come in.
GUEST_GRANT = TokenGrant(GUEST_SCOPES, GUEST_MAX_MINUTES)


def grant(caller: Caller, settings: Settings) -> TokenGrant:
    """The scopes and longest lifetime the caller's roles allow."""
    matching = [(scopes, minutes) for role, scopes, minutes in settings.token_role_policy if role in caller.roles]
    if not matching:
        if GUEST_ROLE in caller.roles:
            return GUEST_GRANT
        return TokenGrant(settings.allowed_scopes, MAX_TOKEN_MINUTES)
    return TokenGrant(frozenset().union(*(scopes for scopes, _ in matching)), max(minutes for _, minutes in matching))


def token_request(caller: Caller, settings: Settings, scopes: object, minutes: object) -> tuple[tuple[str, ...], int]:
    """A token request's scopes and lifetime, validated: malformed or unknown values are 400,
    values the caller's roles do not allow are 403. The result goes to TokenService.issue_token."""
    allowed = grant(caller, settings)
    if scopes is None:
        chosen = tuple(s for s in settings.default_scopes if s in allowed.scopes) or tuple(sorted(allowed.scopes))
    else:
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
            raise InvalidRequest("scopes must be a non-empty list of strings.", code="InvalidScope")
        unknown = sorted({s for s in scopes if s not in settings.allowed_scopes | allowed.scopes})
        if unknown:
            shown = ", ".join(repr(s[:40]) for s in unknown[:5])
            raise InvalidRequest(
                f"Scope(s) {shown} are not allowed; allowed scopes: {', '.join(sorted(settings.allowed_scopes))}.",
                code="InvalidScope",
            )
        beyond = sorted(set(scopes) - allowed.scopes)
        if beyond:
            raise Forbidden(
                f"Your role does not allow the scope(s) {', '.join(beyond)}; you may ask for: {', '.join(sorted(allowed.scopes))}.",
                code="ScopeNotAllowed",
            )
        chosen = tuple(sorted(set(scopes)))
    if minutes is None:
        lifetime = min(settings.default_token_minutes, allowed.max_minutes)
    else:
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not MIN_TOKEN_MINUTES <= minutes <= MAX_TOKEN_MINUTES:
            raise InvalidRequest(
                f"expiresInMinutes must be a whole number from {MIN_TOKEN_MINUTES} to {MAX_TOKEN_MINUTES}.",
                code="InvalidLifetime",
            )
        if minutes > allowed.max_minutes:
            raise Forbidden(f"Your role allows tokens of at most {allowed.max_minutes} minutes.", code="LifetimeNotAllowed")
        lifetime = minutes
    return chosen, lifetime


def guest_request(settings: Settings) -> tuple[tuple[str, ...], int]:
    """The scopes and lifetime of a guest token (POST /api/guest/token): the guest policy, with
    GUEST_TOKEN_MINUTES. 404 GuestAccessDisabled unless GUEST_ACCESS_ENABLED: a deployment that
    does not serve guests does not tell callers more than that."""
    if not settings.guest_access_enabled:
        raise NotFound("This service does not give guest access.", code="GuestAccessDisabled")
    return tuple(sorted(GUEST_GRANT.scopes)), min(settings.guest_token_minutes, GUEST_GRANT.max_minutes)


def _unverified_claims(teams_token: str) -> dict[str, object]:
    """The Teams token's payload, NOT verified: used only to compare its tenant and user with the
    allow-lists and the caller. ACS verifies the signature when it exchanges the token."""
    if not _JWT_SHAPE.fullmatch(teams_token):
        raise InvalidRequest("teamsToken is not a JWT.", code="InvalidTeamsToken")
    payload = teams_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise InvalidRequest("teamsToken is not a JWT.", code="InvalidTeamsToken") from None
    if not isinstance(claims, dict):
        raise InvalidRequest("teamsToken is not a JWT.", code="InvalidTeamsToken")
    return claims


def check_teams_exchange(caller: Caller, settings: Settings, teams_token: str, app_id: str, user_id: str) -> None:
    """Raise unless this caller may exchange this Teams token (after ``admit``)."""
    if not settings.teams_exchange_enabled:
        raise Forbidden("This service does not exchange Teams tokens.", code="TeamsExchangeDisabled")
    for name, value in (("appId", app_id), ("userId", user_id)):
        if not _GUID.fullmatch(value):
            raise InvalidRequest(f"{name} must be a Microsoft Entra id (a GUID).", code="InvalidField")
    if not _allowed(app_id, settings.teams_allowed_app_ids):
        raise Forbidden("Teams tokens of this application are not accepted here.", code="TeamsAppNotAllowed")
    claims = _unverified_claims(teams_token)
    tenant_id = claims.get("tid") if isinstance(claims.get("tid"), str) else None
    object_id = claims.get("oid") if isinstance(claims.get("oid"), str) else None
    if not _allowed(tenant_id, settings.teams_allowed_tenant_ids):
        raise Forbidden("Teams users of this organisation are not accepted here.", code="TeamsTenantNotAllowed")
    if not _is_entra_user(caller):
        return
    if caller.object_id is None or caller.tenant_id is None:
        # A Microsoft Entra user whose object id the platform did not pass on (Static Web Apps'
        # principal carries none): whether the Teams token is theirs cannot be told, so no.
        raise Forbidden(
            "Your Microsoft sign-in does not say which Entra user you are, so a Teams token cannot be matched to you.",
            code="TeamsUserMismatch",
        )
    if (tenant_id or "").lower() != caller.tenant_id or (object_id or "").lower() != caller.object_id:
        raise Forbidden("The Teams token belongs to another user than the one signed in.", code="TeamsUserMismatch")


def _is_entra_user(caller: Caller) -> bool:
    """Signed in with Microsoft Entra, so held to their own Teams user: a platform principal of
    the ``aad`` provider, or a bearer caller whose token comes from an Entra issuer, or is keyed
    ``entra:<tid>|<oid>``, or names a tenant and object id at all. Not the key alone: with
    ``OIDC_USER_KEY=sub`` an Entra caller is ``<issuer>|<sub>`` but still the Entra user their
    token's tid and oid name. A token of another issuer that names a tid and oid (Entra External
    ID's ``*.ciamlogin.com`` issuers, a federation) is held to that user too: the stricter way,
    since it can only refuse."""
    if caller.source == "bearer":
        return (is_entra_issuer(caller.provider) or caller.app_user_id.startswith("entra:")
                or (caller.tenant_id is not None and caller.object_id is not None))
    return caller.provider == "aad"
