"""The ACS Identity operations themselves, free of HTTP: validation, identities, tokens.

Each operation takes the parsed request body and returns the response body, or raises the
``ApiError`` the service would answer with.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from .config import DEFAULT_MINUTES, MAX_MINUTES, MIN_MINUTES, SCOPES, TEAMS_AUDIENCES
from .errors import ApiError, validation
from .store import IdentityStore
from .tokens import SCP_TEAMS_USER, TokenMinter, format_expires_on

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
    def __init__(self, store: IdentityStore, minter: TokenMinter, identity_public_key: object | None) -> None:
        self.store = store
        self.minter = minter
        self._identity_public_key = identity_public_key

    # -- identities ----------------------------------------------------------------------

    def _owned_live(self, identity_id: str) -> str:
        if not identity_id.startswith(ACS_PREFIX) or "_" not in identity_id:
            raise validation("The identifier is not a Communication Services user identifier.", "id")
        if not identity_id.startswith(self.store.prefix):
            raise ApiError(401, "IdentityNotOwned", "The identity does not belong to this resource.")
        if self.store.get(identity_id) is None:
            raise ApiError(404, "IdentityNotFound", "The identity does not exist or has been deleted.")
        return identity_id

    def create(self, body: Any) -> dict[str, Any]:
        request = _object(body)
        scopes_value = request.get("createTokenWithScopes")
        wants_token = bool(scopes_value)
        scopes = _scopes(scopes_value, "CreateTokenWithScopes") if wants_token else []
        minutes = _minutes(request.get("expiresInMinutes"))
        identity_id = self.store.create()
        result: dict[str, Any] = {"identity": {"id": identity_id}}
        if wants_token:
            issued = self.minter.issue(identity_id[2:], scopes, minutes)
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
        issued = self.minter.issue(identity_id[2:], scopes, minutes)
        return {"token": issued.token, "expiresOn": issued.expires_on}

    # -- Teams users ---------------------------------------------------------------------

    def exchange(self, body: Any) -> dict[str, Any]:
        request = _object(body)
        fields = {}
        for name, target in (("token", "Token"), ("appId", "AppId"), ("userId", "UserId")):
            value = request.get(name)
            if not isinstance(value, str) or not value.strip():
                raise validation(f"{target} is required.", target)
            fields[name] = value
        if self._identity_public_key is None:
            raise ApiError(401, "InvalidAccessToken", "Provided access token is not valid.")
        try:
            claims = jwt.decode(
                fields["token"],
                self._identity_public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                audience=list(TEAMS_AUDIENCES),
                options={"require": ["exp", "aud", "oid"]},
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "InvalidAccessToken", "Provided access token is expired.") from None
        except jwt.PyJWTError:
            raise ApiError(401, "InvalidAccessToken", "Provided access token is not valid.") from None
        if (claims.get("appid") or claims.get("azp")) != fields["appId"]:
            raise ApiError(401, "InvalidAccessToken", "The token's appid does not match appId.")
        if claims.get("oid") != fields["userId"]:
            raise ApiError(401, "InvalidAccessToken", "The token's oid does not match userId.")
        expires_at = min(int(claims["exp"]), int(time.time()) + MAX_MINUTES * 60)
        issued = self.minter.issue(
            f"orgid:{fields['userId']}", TEAMS_TOKEN_SCOPES, 0, scp=SCP_TEAMS_USER, expires_at=expires_at
        )
        return {"token": issued.token, "expiresOn": issued.expires_on}

    # -- the control surface's view ------------------------------------------------------

    def verify(self, token: str) -> dict[str, Any]:
        claims = self.minter.read(token)
        if claims is None:
            return {"valid": False, "communicationUserId": None, "scopes": [], "expiresOn": None, "reason": "bad-signature"}
        reason = None
        user_id = claims.communication_user_id
        if user_id.startswith(ACS_PREFIX):
            identity = self.store.get(user_id)
            if identity is None:
                reason = "deleted"
            elif identity.revoked_at_ms is not None and claims.issued_at_ms <= identity.revoked_at_ms:
                reason = "revoked"
        if reason is None and claims.expires_at <= time.time():
            reason = "expired"
        return {
            "valid": reason is None,
            "communicationUserId": user_id,
            "scopes": claims.scopes,
            "expiresOn": format_expires_on(claims.expires_at),
            "reason": reason,
        }
