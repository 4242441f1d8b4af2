"""The app's settings, read once per process and validated, so a misconfiguration fails at the
first request with a message naming the setting instead of surfacing later as a confusing 500.

Every name the code reads is listed in ``SETTING_NAMES``; infra/ sets exactly these (a test
checks both sides stay equal).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

#: The ACS token scopes the service understands (ACS Identity API 2023-10-01).
KNOWN_SCOPES: frozenset[str] = frozenset({"chat", "chat.join", "chat.join.limited", "voip", "voip.join"})

MIN_TOKEN_MINUTES = 60
MAX_TOKEN_MINUTES = 1440

#: The scopes that retire with ACS Chat on 2028-09-30 (MicrosoftDocs/azure-docs,
#: articles/communication-services/acs-retirement-and-breaking-changes-guide.md, 2026-08-18):
#: allowed only when configured, and then the host says so at startup (shared/startup.py).
CHAT_SCOPES: frozenset[str] = frozenset({"chat", "chat.join", "chat.join.limited"})
CHAT_RETIREMENT_DATE = "2028-09-30"
#: What the default deployment allows: calling, the part of ACS that stays supported with a
#: Teams-aligned service after the retirement.
DEFAULT_SCOPES = "voip"

#: The guest policy (shared/access_policy.py): a Teams meeting guest, whether an anonymous
#: person at POST /api/guest/token or a signed-in caller in the ``guest`` role at POST /api/token,
#: gets at most these scopes for at most this long. ACS issues nothing shorter than 60 minutes,
#: so 60 is also the only lifetime a guest token can have.
GUEST_ROLE = "guest"
GUEST_SCOPES: frozenset[str] = frozenset({"voip.join"})
GUEST_MAX_MINUTES = 60

#: The most dependency calls (ACS or Table Storage) one request can chain: a first call that
#: loses the creation race reads the mapping, creates, fails the conditional insert, deletes its
#: identity and reads again. Each may take DEPENDENCY_TIMEOUT_SECONDS, and all of them must fit in
#: REQUEST_DEADLINE_SECONDS, or a request is cut before its last step could have run.
LONGEST_DEPENDENCY_CHAIN = 5

#: App Service injects this (read-only) when its built-in authentication is enabled for the app:
#: "WEBSITE_AUTH_ENABLED: Read-only. Injected into a Windows or Linux app to indicate whether App
#: Service authentication is enabled." (learn.microsoft.com/azure/app-service/reference-app-settings).
#: A platform signal, not one of the app's settings: infra/ must never set it.
PLATFORM_AUTH_SIGNAL = "WEBSITE_AUTH_ENABLED"

#: The value of list settings that means "any" (any provider, any signed-in user, any tenant).
ANY = "*"

#: How bearer callers become app users: by ``sub`` (issuer-qualified), by Entra's tenant + object
#: id, or by the issuer (Entra issuers are keyed by tid + oid, the rest by sub).
OIDC_USER_KEYS = ("auto", "sub", "tid+oid")

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
        "OIDC_MAX_TOKEN_LIFETIME_MINUTES",
        "OIDC_USER_KEY",
        "ACCESS_ALLOWED_PROVIDERS",
        "ACCESS_REQUIRED_ROLES",
        "ACCESS_ALLOWED_EMAIL_DOMAINS",
        "ACCESS_ALLOWED_TENANT_IDS",
        "TOKEN_ROLE_POLICY",
        "TEAMS_EXCHANGE_ENABLED",
        "TEAMS_ALLOWED_APP_IDS",
        "TEAMS_ALLOWED_TENANT_IDS",
        "IDENTITY_CHANGES_PER_MINUTE",
        "MANAGE_REQUESTS_PER_MINUTE",
        "REQUEST_DEADLINE_SECONDS",
        "REVOCATION_CHECK_SECONDS",
        "IDENTITY_CREATIONS_PER_USER_PER_DAY",
        "GUEST_ACCESS_ENABLED",
        "GUEST_TOKEN_MINUTES",
        "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE",
        "GUEST_REQUESTS_PER_MINUTE",
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
    # -- the trust boundary (shared/caller.py, shared/oidc.py, shared/access_policy.py) --------
    #: App Service authentication is on for this app (the platform's own signal, see
    #: PLATFORM_AUTH_SIGNAL): without it a principal header may come from anyone.
    platform_auth_enabled: bool = False
    oidc_max_token_lifetime_minutes: int = 1440
    oidc_user_key: str = "auto"
    #: Identity providers whose principal callers may get tokens; ("*",) for any.
    access_allowed_providers: frozenset[str] = frozenset({"aad", "github"})
    #: The caller needs one of these roles; ("*",) for any signed-in user.
    access_required_roles: frozenset[str] = frozenset({"member"})
    #: Bearer callers: e-mail domains and Entra tenant ids allowed (empty: not checked).
    access_allowed_email_domains: frozenset[str] = frozenset()
    access_allowed_tenant_ids: frozenset[str] = frozenset()
    #: role -> (scopes, maximum minutes); empty: every admitted caller gets ACS_ALLOWED_SCOPES.
    token_role_policy: tuple[tuple[str, frozenset[str], int], ...] = ()
    teams_exchange_enabled: bool = False
    teams_allowed_app_ids: frozenset[str] = frozenset()
    teams_allowed_tenant_ids: frozenset[str] = frozenset()
    identity_changes_per_minute: int = 10
    manage_requests_per_minute: int = 10
    request_deadline_seconds: float = 25.0
    #: The longest an instance hands out a token issued before a revoke made through another
    #: instance: older reused tokens need a read of the user's row within this many seconds.
    revocation_check_seconds: float = 5.0
    #: New ACS identities one user may cause per day on one instance (0 = no limit).
    identity_creations_per_user_per_day: int = 10
    # -- Teams meeting guests (shared/guest_service.py) --------------------------------------
    #: Serve POST /api/guest/token (off: 404 GuestAccessDisabled).
    guest_access_enabled: bool = False
    guest_token_minutes: int = GUEST_MAX_MINUTES
    #: Guest tokens one client address may get per minute, and all clients together, per instance.
    guest_requests_per_client_per_minute: int = 5
    guest_requests_per_minute: int = 30


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


def _names(env: Mapping[str, str], name: str, default: str, pattern: re.Pattern[str], lower: bool = True) -> frozenset[str]:
    """A comma-separated list whose items match ``pattern``, or exactly "*" (any)."""
    raw = _text(env, name) or default
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if lower:
        items = [item.lower() for item in items]
    if items == [ANY]:
        return frozenset({ANY})
    bad = [item for item in items if not pattern.fullmatch(item)]
    if bad:
        raise SettingsError(f"{name} must be a comma-separated list (or {ANY!r} for any), not {raw!r}")
    return frozenset(items)


_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _role_policy(env: Mapping[str, str], allowed: frozenset[str]) -> tuple[tuple[str, frozenset[str], int], ...]:
    """TOKEN_ROLE_POLICY: ``role:scope+scope:minutes`` entries separated by ``;``, e.g.
    ``member:chat+voip:1440;guest:voip.join:60``. Scopes must be within ACS_ALLOWED_SCOPES."""
    raw = _text(env, "TOKEN_ROLE_POLICY")
    if raw is None:
        return ()
    entries: dict[str, tuple[frozenset[str], int]] = {}
    for entry in (e.strip() for e in raw.split(";")):
        if not entry:
            continue
        parts = [p.strip() for p in entry.split(":")]
        if len(parts) != 3 or not _ROLE_NAME.fullmatch(parts[0]) or not parts[2].isdigit():
            raise SettingsError(f"TOKEN_ROLE_POLICY entries must be role:scope+scope:minutes, not {entry!r}")
        role, scopes, minutes = parts[0], frozenset(s.strip() for s in parts[1].split("+") if s.strip()), int(parts[2])
        if not scopes or scopes - allowed:
            raise SettingsError(f"TOKEN_ROLE_POLICY: the scopes of {role!r} must be among ACS_ALLOWED_SCOPES {sorted(allowed)}")
        if not MIN_TOKEN_MINUTES <= minutes <= MAX_TOKEN_MINUTES:
            raise SettingsError(f"TOKEN_ROLE_POLICY: the minutes of {role!r} must be {MIN_TOKEN_MINUTES}-{MAX_TOKEN_MINUTES}")
        if role == GUEST_ROLE and (scopes - GUEST_SCOPES or minutes > GUEST_MAX_MINUTES):
            raise SettingsError(
                f"TOKEN_ROLE_POLICY: the {GUEST_ROLE!r} role gets at most the guest policy "
                f"({'+'.join(sorted(GUEST_SCOPES))} for {GUEST_MAX_MINUTES} minutes)"
            )
        if role in entries:
            raise SettingsError(f"TOKEN_ROLE_POLICY names {role!r} twice")
        entries[role] = (scopes, minutes)
    return tuple((role, scopes, minutes) for role, (scopes, minutes) in sorted(entries.items()))


def _duration_seconds(text: str) -> float | None:
    """host.json's functionTimeout ("hh:mm:ss", "-1" or null for unbounded) in seconds."""
    if text in ("-1", ""):
        return None
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?", text.strip())
    if not match:
        raise SettingsError(f"host.json functionTimeout must be hh:mm:ss, not {text!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def function_timeout_seconds(env: Mapping[str, str], host_json: Path | None = None) -> float | None:
    """The Functions host's functionTimeout: the AzureFunctionsJobHost__functionTimeout override
    if set, else host.json's value; None when unbounded or not stated."""
    override = _text(env, "AzureFunctionsJobHost__functionTimeout")
    if override is not None:
        return _duration_seconds(override)
    path = host_json or Path(__file__).resolve().parent.parent / "host.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    value = document.get("functionTimeout") if isinstance(document, dict) else None
    return _duration_seconds(value) if isinstance(value, str) else None


def load_settings(env: Mapping[str, str] = os.environ, host_json: Path | None = None) -> Settings:
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

    allowed = _scopes(env, "ACS_ALLOWED_SCOPES", DEFAULT_SCOPES)
    default = _scopes(env, "ACS_DEFAULT_SCOPES", ",".join(allowed))
    if set(default) - set(allowed):
        raise SettingsError("ACS_DEFAULT_SCOPES must be a subset of ACS_ALLOWED_SCOPES")

    dependency_timeout = _number(env, "DEPENDENCY_TIMEOUT_SECONDS", 5, 1, 120, float)
    # Below the Static Web Apps proxy's 45 s cut, so the caller gets our 503 + Retry-After.
    deadline = _number(env, "REQUEST_DEADLINE_SECONDS", 25, 2, 44, float)
    if dependency_timeout * LONGEST_DEPENDENCY_CHAIN > deadline:
        raise SettingsError(
            f"DEPENDENCY_TIMEOUT_SECONDS ({dependency_timeout:g}) x {LONGEST_DEPENDENCY_CHAIN} chained calls must fit in "
            f"REQUEST_DEADLINE_SECONDS ({deadline:g})"
        )
    cleanup_budget = _number(env, "CLEANUP_TIME_BUDGET_SECONDS", 240, 5, 3600, float)
    function_timeout = function_timeout_seconds(env, host_json)
    if function_timeout is not None and cleanup_budget >= function_timeout:
        raise SettingsError(
            f"CLEANUP_TIME_BUDGET_SECONDS ({cleanup_budget:g}) must be below the host's functionTimeout ({function_timeout:g} s)"
        )

    oidc_user_key = (_text(env, "OIDC_USER_KEY") or "auto").lower()
    if oidc_user_key not in OIDC_USER_KEYS:
        raise SettingsError(f"OIDC_USER_KEY must be one of {', '.join(OIDC_USER_KEYS)}, not {oidc_user_key!r}")
    teams_enabled = _flag(env, "TEAMS_EXCHANGE_ENABLED", False)
    teams_app_ids = _names(env, "TEAMS_ALLOWED_APP_IDS", "", _GUID)
    teams_tenants = _names(env, "TEAMS_ALLOWED_TENANT_IDS", "", _GUID)
    if teams_enabled and not (teams_app_ids and teams_tenants):
        raise SettingsError(
            f"TEAMS_EXCHANGE_ENABLED needs TEAMS_ALLOWED_APP_IDS and TEAMS_ALLOWED_TENANT_IDS (Entra ids, or {ANY!r})"
        )
    guest_minutes = _text(env, "GUEST_TOKEN_MINUTES")
    if guest_minutes is not None and guest_minutes != str(GUEST_MAX_MINUTES):
        raise SettingsError(
            f"GUEST_TOKEN_MINUTES must be {GUEST_MAX_MINUTES}, not {guest_minutes!r}: a guest token lasts at most "
            f"{GUEST_MAX_MINUTES} minutes and ACS issues none shorter than {MIN_TOKEN_MINUTES}"
        )

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
        dependency_timeout_seconds=dependency_timeout,
        cleanup_dry_run=_flag(env, "CLEANUP_DRY_RUN", False),
        cleanup_inactive_days=_number(env, "CLEANUP_INACTIVE_DAYS", 0, 0, 3650),
        cleanup_time_budget_seconds=cleanup_budget,
        cleanup_concurrency=_number(env, "CLEANUP_CONCURRENCY", 16, 1, 256),
        cleanup_tombstone_retention_hours=_number(env, "CLEANUP_TOMBSTONE_RETENTION_HOURS", 24, 0, 720, float),
        platform_auth_enabled=(_text(env, PLATFORM_AUTH_SIGNAL) or "").lower() == "true",
        oidc_max_token_lifetime_minutes=_number(env, "OIDC_MAX_TOKEN_LIFETIME_MINUTES", 1440, 5, 7 * 1440),
        oidc_user_key=oidc_user_key,
        access_allowed_providers=_names(env, "ACCESS_ALLOWED_PROVIDERS", "aad,github", _PROVIDER_NAME),
        access_required_roles=_names(env, "ACCESS_REQUIRED_ROLES", "member", _ROLE_NAME, lower=False),
        access_allowed_email_domains=_names(env, "ACCESS_ALLOWED_EMAIL_DOMAINS", "", _DOMAIN),
        access_allowed_tenant_ids=_names(env, "ACCESS_ALLOWED_TENANT_IDS", "", _GUID),
        token_role_policy=_role_policy(env, frozenset(allowed)),
        teams_exchange_enabled=teams_enabled,
        teams_allowed_app_ids=teams_app_ids,
        teams_allowed_tenant_ids=teams_tenants,
        identity_changes_per_minute=_number(env, "IDENTITY_CHANGES_PER_MINUTE", 10, 0, 10_000),
        manage_requests_per_minute=_number(env, "MANAGE_REQUESTS_PER_MINUTE", 10, 0, 10_000),
        request_deadline_seconds=deadline,
        revocation_check_seconds=_number(env, "REVOCATION_CHECK_SECONDS", 5, 0, 60, float),
        identity_creations_per_user_per_day=_number(env, "IDENTITY_CREATIONS_PER_USER_PER_DAY", 10, 0, 100_000),
        guest_access_enabled=_flag(env, "GUEST_ACCESS_ENABLED", False),
        guest_token_minutes=GUEST_MAX_MINUTES,
        # At least 1: guest access is anonymous, so "no limit" is not offered.
        guest_requests_per_client_per_minute=_number(env, "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE", 5, 1, 1000),
        guest_requests_per_minute=_number(env, "GUEST_REQUESTS_PER_MINUTE", 30, 1, 1000),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, parsed on first use (not at import, which must stay cheap)."""
    return load_settings()
