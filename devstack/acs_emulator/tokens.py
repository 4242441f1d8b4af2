"""ACS access tokens: minted like the service's, checked by the emulator's verify route.

Claims follow real ACS tokens (skypeid, scp, csi, iat, exp, rgn, acsScope, resourceId,
resourceLocation; ../ACS_FACTS.md): times in whole seconds and no unique id, so two identical
issues within one second give the same string, as real ACS may. ``unique=True`` (an
emulator-only behaviour, for tests that want it) adds ``jti`` and puts milliseconds in ``csi``.
A token is revoked when ``csi`` is not after the revocation: with whole seconds, tokens issued
later in the second of a revocation count as revoked too.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.pki import key_id, load_or_create_rsa_key, new_rsa_key, public_pem

SCP_USER = 1792
SCP_TEAMS_USER = 1024


def format_expires_on(epoch_seconds: float) -> str:
    """The service's ``expiresOn`` form: ISO 8601, 7 fractional digits, ``+00:00``
    (e.g. ``2023-10-10T21:39:39.3244584+00:00``)."""
    moment = dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0+00:00"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_on: str


@dataclass(frozen=True)
class TokenClaims:
    """What the verify route reports about a token."""

    communication_user_id: str
    scopes: list[str]
    expires_at: int
    issued_at_ms: int


class TokenMinter:
    """Signs ACS tokens with the emulator's own RSA key (cached; one RS256 signature per token)."""

    def __init__(self, key_path: Path | None, resource_id: str, resource_location: str, region: str) -> None:
        self._key: rsa.RSAPrivateKey = load_or_create_rsa_key(key_path) if key_path else new_rsa_key()
        self._public_key = self._key.public_key()
        self._kid = key_id(public_pem(self._key))
        self._resource_id = resource_id
        self._resource_location = resource_location
        self._region = region

    def issue(
        self,
        skype_id: str,
        scopes: list[str],
        minutes: int,
        *,
        scp: int = SCP_USER,
        expires_at: int | None = None,
        unique: bool = True,
    ) -> IssuedToken:
        now = time.time()
        issued_at = int(now)
        if expires_at is None:
            expires_at = issued_at + minutes * 60
        claims: dict[str, object] = {
            "skypeid": skype_id,
            "scp": scp,
            "csi": str(int(now * 1000)) if unique else str(issued_at),
            "exp": expires_at,
            "rgn": self._region,
            "acsScope": ",".join(scopes),
            "resourceId": self._resource_id,
            "resourceLocation": self._resource_location,
            "iat": issued_at,
        }
        if unique:
            claims["jti"] = uuid.uuid4().hex
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid, "typ": "JWT"})
        return IssuedToken(token=token, expires_on=format_expires_on(expires_at))

    def read(self, token: str) -> TokenClaims | None:
        """The claims of a token this emulator signed (expired ones included), else None."""
        try:
            claims = jwt.decode(token, self._public_key, algorithms=["RS256"], options={"verify_exp": False})
            skype_id = str(claims["skypeid"])
            csi = int(claims["csi"])
            return TokenClaims(
                communication_user_id=f"8:{skype_id}",
                scopes=[s for s in str(claims.get("acsScope", "")).split(",") if s],
                expires_at=int(claims["exp"]),
                # Whole seconds (as real ACS) or milliseconds (unique tokens): a whole-second
                # token counts as issued at the start of its second, so a revocation within that
                # second revokes it whether it was issued before or after.
                issued_at_ms=csi if csi > 10**11 else csi * 1000,
            )
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return None
