"""Who may call the emulated ACS resource: HMAC-SHA256 (access key) or a bearer JWT.

HMAC follows the SDK's ``HMACCredentialsPolicy`` byte for byte: the string to sign is
``VERB \\n pathAndQuery \\n <values of SignedHeaders joined by ';'>`` where pathAndQuery is the
request target exactly as sent (the sync SDK percent-encodes identity ids, the aio SDK sends
them literally, and each signs what it sends), and the body must match x-ms-content-sha256.

Bearer tokens are the local managed identity's: RS256, signed by the identity endpoint's key,
for the audience https://communication.azure.com (the SDK asks for ``…//.default``, so a
trailing slash is tolerated), within their lifetime.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from email.utils import parsedate_to_datetime
from typing import Mapping

import jwt

from .config import BEARER_AUDIENCES
from .errors import denied

REQUIRED_SIGNED_HEADERS = frozenset({"x-ms-date", "host", "x-ms-content-sha256"})


def content_hash(body: bytes) -> str:
    """Base64 SHA-256 of the body, as carried in x-ms-content-sha256."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def string_to_sign(verb: str, path_and_query: str, date: str, host: str, body_hash: str) -> str:
    return f"{verb.upper()}\n{path_and_query}\n{date};{host};{body_hash}"


def hmac_signature(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode()


def sign_request_headers(
    key: bytes, verb: str, path_and_query: str, host: str, body: bytes = b"", date: str | None = None
) -> dict[str, str]:
    """The headers the SDK adds to a request; for raw calls in tests and scripts."""
    if date is None:
        date = dt.datetime.now(dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    body_hash = content_hash(body)
    signature = hmac_signature(key, string_to_sign(verb, path_and_query, date, host, body_hash))
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": body_hash,
        "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}",
    }


def _parse_hmac_header(value: str) -> tuple[list[str], str]:
    scheme, _, rest = value.partition(" ")
    if scheme != "HMAC-SHA256":
        raise denied()
    fields: dict[str, str] = {}
    for part in rest.strip().split("&"):
        name, sep, item = part.partition("=")
        if not sep:
            raise denied()
        fields[name.strip()] = item.strip()
    headers = [h.strip().lower() for h in fields.get("SignedHeaders", "").split(";") if h.strip()]
    signature = fields.get("Signature", "")
    if not signature or not REQUIRED_SIGNED_HEADERS <= set(headers):
        raise denied()
    return headers, signature


def verify_hmac(
    *,
    key: bytes,
    authorization: str,
    method: str,
    path_and_query: str,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime,
    max_skew_seconds: int,
) -> None:
    """Raise 401 Denied unless the request carries a valid signature over itself."""
    signed_headers, signature = _parse_hmac_header(authorization)
    body_hash = headers.get("x-ms-content-sha256", "")
    if not hmac.compare_digest(body_hash.encode(), content_hash(body).encode()):
        raise denied("The content hash does not match the request body.")
    date_text = headers.get("x-ms-date", "")
    try:
        sent_at = parsedate_to_datetime(date_text)
    except (TypeError, ValueError):
        raise denied("The x-ms-date header is missing or malformed.") from None
    if sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=dt.timezone.utc)
    if abs((now - sent_at).total_seconds()) > max_skew_seconds:
        raise denied("The request date is outside the allowed clock skew.")
    values = []
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            raise denied()
        values.append(value)
    text = f"{method.upper()}\n{path_and_query}\n" + ";".join(values)
    if not hmac.compare_digest(hmac_signature(key, text).encode(), signature.encode()):
        raise denied()


def verify_bearer(token: str, public_key: object | None) -> dict:
    """The claims of a valid managed-identity token for ACS, or 401 Denied."""
    if public_key is None:
        raise denied("Bearer authentication is not configured.")
    try:
        return jwt.decode(
            token,
            public_key,  # type: ignore[arg-type]
            algorithms=["RS256"],
            audience=list(BEARER_AUDIENCES),
            options={"require": ["exp", "aud"]},
            leeway=60,
        )
    except jwt.PyJWTError:
        raise denied() from None
