"""The app's settings, read once per process and validated, so a misconfiguration fails at the
first request with a message naming the setting instead of surfacing later as a confusing 500.

Every name the code reads is listed in ``SETTING_NAMES``; infra/ sets exactly these (a test
checks both sides stay equal).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

#: The ACS token scopes the service understands (ACS Identity API 2023-10-01).
KNOWN_SCOPES: frozenset[str] = frozenset({"chat", "chat.join", "chat.join.limited", "voip", "voip.join"})

MIN_TOKEN_MINUTES = 60
MAX_TOKEN_MINUTES = 1440

SETTING_NAMES: frozenset[str] = frozenset(
    {
        "ACS_ENDPOINT",
        "ACS_CONNECTION_STRING",
        "TABLES_ENDPOINT",
        "TABLES_CONNECTION_STRING",
        "IDENTITY_TABLE_NAME",
        "AZURE_CLIENT_ID",
        "TRUST_CLIENT_PRINCIPAL",
        "OIDC_ISSUER",
        "OIDC_AUDIENCE",
        "OIDC_ALGORITHMS",
        "ACS_ALLOWED_SCOPES",
        "ACS_DEFAULT_SCOPES",
        "TOKEN_DEFAULT_MINUTES",
        "TOKEN_REUSE_SECONDS",
        "TOKEN_REQUESTS_PER_MINUTE",
        "DEPENDENCY_TIMEOUT_SECONDS",
        "CLEANUP_SCHEDULE",
        "CLEANUP_DRY_RUN",
        "CLEANUP_INACTIVE_DAYS",
        "CLEANUP_TIME_BUDGET_SECONDS",
        "CLEANUP_CONCURRENCY",
        "CLEANUP_TOMBSTONE_RETENTION_HOURS",
    }
)


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Endpoints mean managed identity; connection strings are for
    local emulators only and are used when no endpoint is set."""

    acs_endpoint: str | None
    acs_connection_string: str | None
    tables_endpoint: str | None
    tables_connection_string: str | None
    identity_table: str
    trust_client_principal: bool
    oidc_issuer: str | None
    oidc_audience: str | None
    oidc_algorithms: tuple[str, ...]
    allowed_scopes: frozenset[str]
    default_scopes: tuple[str, ...]
    default_token_minutes: int
    token_reuse_seconds: int
    token_requests_per_minute: int
    dependency_timeout_seconds: float
    cleanup_dry_run: bool
    cleanup_inactive_days: int
    cleanup_time_budget_seconds: float
    cleanup_concurrency: int
    cleanup_tombstone_retention_hours: float


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = _text(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, kind: type = int):
    value = _text(env, name)
    if value is None:
        return kind(default)
    try:
        number = kind(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
    return number


def _scopes(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    raw = _text(env, name) or default
    scopes = tuple(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown or not scopes:
        raise SettingsError(f"{name} must list scopes from {sorted(KNOWN_SCOPES)}, not {raw!r}")
    return scopes


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Parse and validate the settings from ``env`` (the process environment by default)."""
    acs_endpoint = _text(env, "ACS_ENDPOINT")
    acs_connection_string = _text(env, "ACS_CONNECTION_STRING")
    if not (acs_endpoint or acs_connection_string):
        raise SettingsError("ACS_ENDPOINT (managed identity) or ACS_CONNECTION_STRING (local emulator) must be set")
    tables_endpoint = _text(env, "TABLES_ENDPOINT")
    tables_connection_string = _text(env, "TABLES_CONNECTION_STRING")
    if not (tables_endpoint or tables_connection_string):
        raise SettingsError("TABLES_ENDPOINT (managed identity) or TABLES_CONNECTION_STRING (local emulator) must be set")
    for name, value in (("ACS_ENDPOINT", acs_endpoint), ("TABLES_ENDPOINT", tables_endpoint)):
        if value and not value.startswith("https://"):
            raise SettingsError(f"{name} must be an https:// URL (managed identity refuses plain http)")

    table = _text(env, "IDENTITY_TABLE_NAME") or "acsidentities"
    if not (table.isascii() and table.isalnum() and table[0].isalpha() and 3 <= len(table) <= 63):
        raise SettingsError(f"IDENTITY_TABLE_NAME must be 3-63 letters and digits starting with a letter, not {table!r}")

    oidc_issuer = _text(env, "OIDC_ISSUER")
    oidc_audience = _text(env, "OIDC_AUDIENCE")
    if bool(oidc_issuer) != bool(oidc_audience):
        raise SettingsError("OIDC_ISSUER and OIDC_AUDIENCE must be set together")
    if oidc_issuer and not (
        oidc_issuer.startswith("https://")
        or any(oidc_issuer.startswith(f"http://{host}") for host in ("127.0.0.1", "localhost", "[::1]"))
    ):
        raise SettingsError("OIDC_ISSUER must be an https:// URL (plain http only on this machine, for local issuers)")
    algorithms = tuple(a.strip() for a in (_text(env, "OIDC_ALGORITHMS") or "RS256").split(",") if a.strip())
    allowed_algorithms = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
    if not algorithms or set(algorithms) - allowed_algorithms:
        raise SettingsError(f"OIDC_ALGORITHMS must be asymmetric algorithms from {sorted(allowed_algorithms)}")

    allowed = _scopes(env, "ACS_ALLOWED_SCOPES", "chat,voip")
    default = _scopes(env, "ACS_DEFAULT_SCOPES", ",".join(allowed))
    if set(default) - set(allowed):
        raise SettingsError("ACS_DEFAULT_SCOPES must be a subset of ACS_ALLOWED_SCOPES")

    return Settings(
        acs_endpoint=acs_endpoint,
        acs_connection_string=None if acs_endpoint else acs_connection_string,
        tables_endpoint=tables_endpoint,
        tables_connection_string=None if tables_endpoint else tables_connection_string,
        identity_table=table,
        trust_client_principal=_flag(env, "TRUST_CLIENT_PRINCIPAL", False),
        # Discovery lives at <issuer>/.well-known/…; whether tokens carry the trailing slash is
        # for the issuer's discovery document to say (shared/oidc.py accepts either form).
        oidc_issuer=oidc_issuer.rstrip("/") if oidc_issuer else None,
        oidc_audience=oidc_audience,
        oidc_algorithms=algorithms,
        allowed_scopes=frozenset(allowed),
        default_scopes=default,
        default_token_minutes=_number(env, "TOKEN_DEFAULT_MINUTES", 60, MIN_TOKEN_MINUTES, MAX_TOKEN_MINUTES),
        token_reuse_seconds=_number(env, "TOKEN_REUSE_SECONDS", 60, 0, 900),
        token_requests_per_minute=_number(env, "TOKEN_REQUESTS_PER_MINUTE", 60, 0, 100_000),
        dependency_timeout_seconds=_number(env, "DEPENDENCY_TIMEOUT_SECONDS", 10, 1, 120, float),
        cleanup_dry_run=_flag(env, "CLEANUP_DRY_RUN", False),
        cleanup_inactive_days=_number(env, "CLEANUP_INACTIVE_DAYS", 0, 0, 3650),
        cleanup_time_budget_seconds=_number(env, "CLEANUP_TIME_BUDGET_SECONDS", 240, 5, 3600, float),
        cleanup_concurrency=_number(env, "CLEANUP_CONCURRENCY", 16, 1, 256),
        cleanup_tombstone_retention_hours=_number(env, "CLEANUP_TOMBSTONE_RETENTION_HOURS", 24, 0, 720, float),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, parsed on first use (not at import, which must stay cheap)."""
    return load_settings()
