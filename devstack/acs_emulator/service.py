"""The ACS Identity operations themselves, free of HTTP: validation, identities, tokens.

Each operation takes the parsed request body and returns the response body, or raises the
``ApiError`` the service would answer with.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

import jwt

from .config import (
    DEFAULT_MINUTES,
    DELETED_IDENTITY_ANSWERS,
    DELETED_IDENTITY_MESSAGE,
    MAX_MINUTES,
    MIN_MINUTES,
    NOT_OWNED_MESSAGE,
    SCOPES,
    TEAMS_AUDIENCES,
)
from .errors import ApiError, validation
from .limits import Settings
from .store import IdentityStore
from .tokens import SCP_TEAMS_USER, TokenMinter, format_expires_on

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_INVALID_TEAMS_TOKEN = "Provided access token is not valid."

ACS_PREFIX = "8:acs:"
TEAMS_TOKEN_SCOPES = ["voip", "chat"]


def _scopes(value: Any, target: str) -> list[str]:
    if value is None or value == []:
        raise validation("At least one scope is required.", target)
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise validation("Scopes must be a list of strings.", target)
    unknown = sorted(set(value) - SCOPES)
    if unknown:
        raise validation(f"Unknown scopes {unknown}; allowed: {sorted(SCOPES)}.", target)
    return list(dict.fromkeys(value))


def _minutes(value: Any) -> int:
    if value is None:
        return DEFAULT_MINUTES
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_MINUTES <= value <= MAX_MINUTES:
        raise validation(
            f"The expiration time must be between {MIN_MINUTES} and {MAX_MINUTES} minutes.", "ExpiresInMinutes"
        )
    return value


def _object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise validation("The request body must be a JSON object.")
    return body


class IdentityService:
    def __init__(
        self,
        store: IdentityStore,
        minter: TokenMinter,
        identity_public_key: object | None,
        knobs: Callable[[], Settings] = Settings,
    ) -> None:
        self.store = store
        self.minter = minter
        self._identity_public_key = identity_public_key
        self._knobs = knobs

    # -- identities ----------------------------------------------------------------------

    def _owned_live(self, identity_id: str) -> str:
        if not identity_id.startswith(ACS_PREFIX) or "_" not in identity_id:
            raise validation("The identifier is not a Communication Services user identifier.", "id")
        if not identity_id.startswith(self.store.prefix):
            # As recorded from the real service for issue, revoke and delete (HMAC and bearer).
            raise ApiError(401, "IdentityNotOwned", NOT_OWNED_MESSAGE)
        if self.store.get(identity_id) is None:
            status, code, target = DELETED_IDENTITY_ANSWERS[self._knobs().deleted_identity_answer]
            message = NOT_OWNED_MESSAGE if code == "IdentityNotOwned" else DELETED_IDENTITY_MESSAGE
            raise ApiError(status, code, message, target=target)
        return identity_id

    def _unique(self) -> bool:
        return not self._knobs().identical_tokens_within_second

    def create(self, body: Any) -> dict[str, Any]:
        request = _object(body)
        scopes_value = request.get("createTokenWithScopes")
        wants_token = bool(scopes_value)
        scopes = _scopes(scopes_value, "CreateTokenWithScopes") if wants_token else []
        minutes = _minutes(request.get("expiresInMinutes"))
        identity_id = self.store.create()
        result: dict[str, Any] = {"identity": {"id": identity_id}}
        if wants_token:
            issued = self.minter.issue(identity_id[2:], scopes, minutes, unique=self._unique())
            result["accessToken"] = {"token": issued.token, "expiresOn": issued.expires_on}
        return result

    def delete(self, identity_id: str) -> None:
        self.store.delete(self._owned_live(identity_id))

    def revoke(self, identity_id: str) -> None:
        self.store.revoke(self._owned_live(identity_id))

    def issue(self, identity_id: str, body: Any) -> dict[str, Any]:
        request = _object(body)
        scopes = _scopes(request.get("scopes"), "Scopes")
        minutes = _minutes(request.get("expiresInMinutes"))
        self._owned_live(identity_id)
        issued = self.minter.issue(identity_id[2:], scopes, minutes, unique=self._unique())
        return {"token": issued.token, "expiresOn": issued.expires_on}

    # -- Teams users ---------------------------------------------------------------------

    def exchange(self, body: Any) -> dict[str, Any]:
        """As recorded from the real service (../acs-recordings, the Teams sessions): the token is
        checked before any other field (token "" or "invalid" is 401 even when userId is empty),
        then the fields' presence, then their format, then whether they fit the token."""
        request = _object(body)
        token, app_id, user_id = (request.get(name) for name in ("token", "appId", "userId"))
        claims = self._teams_claims(token)
        if not isinstance(app_id, str) or not app_id.strip():
            raise validation("AppId: The AppId field is required.", "AppId", lists_versions=False)
        if not isinstance(user_id, str) or not user_id.strip():
            raise validation("UserId: The UserId field is required.", "UserId", lists_versions=False)
        if not _GUID.match(app_id):
            raise validation("Provided AppId has invalid format.", "appId")
        if not _GUID.match(user_id):
            raise validation("Provided UserId has invalid format.", "userId")
        if str(claims.get("appid") or claims.get("azp") or "").lower() != app_id.lower():
            raise validation("AAD application is not the expected one.", "appId")
        if str(claims.get("oid") or "").lower() != user_id.lower():
            raise validation("Provided AAD token issued for unexpected user.", "userId")
        expires_at = min(int(claims["exp"]), int(time.time()) + MAX_MINUTES * 60)
        issued = self.minter.issue(
            f"orgid:{user_id}", TEAMS_TOKEN_SCOPES, 0, scp=SCP_TEAMS_USER, expires_at=expires_at, unique=self._unique()
        )
        return {"token": issued.token, "expiresOn": issued.expires_on}

    def _teams_claims(self, token: Any) -> dict[str, Any]:
        """The claims of a valid Entra token for ACS, else 401 InvalidAccessToken with the one
        message real ACS gives for empty, malformed and expired tokens alike."""
        invalid = ApiError(401, "InvalidAccessToken", _INVALID_TEAMS_TOKEN, lists_versions=False)
        if not isinstance(token, str) or not token.strip() or self._identity_public_key is None:
            raise invalid
        try:
            return jwt.decode(
                token,
                self._identity_public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                audience=list(TEAMS_AUDIENCES),
                options={"require": ["exp", "aud", "oid"]},
            )
        except jwt.PyJWTError:
            raise invalid from None

    # -- the control surface's view ------------------------------------------------------

    def verify(self, token: str) -> dict[str, Any]:
        claims = self.minter.read(token)
        if claims is None:
            return {"valid": False, "communicationUserId": None, "scopes": [], "expiresOn": None, "reason": "bad-signature", "revoked": False}
        reason = None
        user_id = claims.communication_user_id
        revoked = False
        if user_id.startswith(ACS_PREFIX):
            identity = self.store.get(user_id)
            if identity is None:
                reason = "deleted"
            elif identity.revoked_at_ms is not None and claims.issued_at_ms <= identity.revoked_at_ms:
                revoked = True  # the truth, whatever the propagation delay
                enforced_at_ms = identity.revoked_at_ms + self._knobs().revocation_delay_seconds * 1000
                if time.time() * 1000 >= enforced_at_ms:
                    reason = "revoked"
        if reason is None and claims.expires_at <= time.time():
            reason = "expired"
        return {
            "valid": reason is None,
            "communicationUserId": user_id,
            "scopes": claims.scopes,
            "expiresOn": format_expires_on(claims.expires_at),
            "reason": reason,
            "revoked": revoked,
        }
