"""README's Settings table: each default it states is the default shared/settings.py applies
(a changed default in either place fails here), and the defaults quoted in prose
(REVOCATION_CHECK_SECONDS, IDENTITY_CREATIONS_PER_USER_PER_DAY) too. No stack needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.settings import load_settings

README = Path(__file__).resolve().parents[2] / "README.md"

ENV = {
    "ACS_CONNECTION_STRING": "endpoint=https://acs.invalid/;accesskey=bm90LWEta2V5",
    "TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true",
}

#: README setting -> how to read the effective default from the parsed settings.
READ = {
    "IDENTITY_TABLE_NAME": lambda s: s.identity_table,
    "TRUST_CLIENT_PRINCIPAL": lambda s: s.trust_client_principal,
    "OIDC_ALGORITHMS": lambda s: ",".join(s.oidc_algorithms),
    "OIDC_MAX_TOKEN_LIFETIME_MINUTES": lambda s: s.oidc_max_token_lifetime_minutes,
    "OIDC_USER_KEY": lambda s: s.oidc_user_key,
    "ACCESS_ALLOWED_PROVIDERS": lambda s: ",".join(sorted(s.access_allowed_providers)),
    "ACCESS_REQUIRED_ROLES": lambda s: ",".join(sorted(s.access_required_roles)),
    "TEAMS_EXCHANGE_ENABLED": lambda s: s.teams_exchange_enabled,
    "GUEST_ACCESS_ENABLED": lambda s: s.guest_access_enabled,
    "GUEST_TOKEN_MINUTES": lambda s: s.guest_token_minutes,
    "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE": lambda s: s.guest_requests_per_client_per_minute,
    "GUEST_REQUESTS_PER_MINUTE": lambda s: s.guest_requests_per_minute,
    "ACS_ALLOWED_SCOPES": lambda s: ",".join(sorted(s.allowed_scopes)),
    "TOKEN_DEFAULT_MINUTES": lambda s: s.default_token_minutes,
    "TOKEN_REUSE_SECONDS": lambda s: s.token_reuse_seconds,
    "TOKEN_REQUESTS_PER_MINUTE": lambda s: s.token_requests_per_minute,
    "IDENTITY_CHANGES_PER_MINUTE": lambda s: s.identity_changes_per_minute,
    "MANAGE_REQUESTS_PER_MINUTE": lambda s: s.manage_requests_per_minute,
    "DEPENDENCY_TIMEOUT_SECONDS": lambda s: s.dependency_timeout_seconds,
    "REQUEST_DEADLINE_SECONDS": lambda s: s.request_deadline_seconds,
    "CLEANUP_DRY_RUN": lambda s: s.cleanup_dry_run,
    "CLEANUP_INACTIVE_DAYS": lambda s: s.cleanup_inactive_days,
    "CLEANUP_TIME_BUDGET_SECONDS": lambda s: s.cleanup_time_budget_seconds,
    "CLEANUP_CONCURRENCY": lambda s: s.cleanup_concurrency,
    "CLEANUP_TOMBSTONE_RETENTION_HOURS": lambda s: s.cleanup_tombstone_retention_hours,
}


def _table_defaults() -> dict[str, str]:
    """setting -> the first backticked value of its default cell, from README's Settings table."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Settings"):text.index("\n## ", text.index("\n## Settings") + 1)]
    defaults = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            value = re.match(r"`([^`]*)`", cells[1])
            for name in re.findall(r"`([A-Z_]+)`", cells[0]):
                defaults[name] = value.group(1) if value else None
    return defaults


def _same(stated: str, actual: object) -> bool:
    if isinstance(actual, bool):
        return stated == str(actual).lower()
    if isinstance(actual, (int, float)):
        return float(stated) == float(actual)
    return stated == actual


@pytest.mark.parametrize("name", sorted(READ))
def test_the_settings_table_states_the_default_the_code_applies(name: str):
    stated = _table_defaults().get(name)
    assert stated is not None, f"README's Settings table has no default for {name}"
    actual = READ[name](load_settings(ENV))
    assert _same(stated, actual), f"README says {name} defaults to {stated!r}; the code applies {actual!r}"


def test_defaults_quoted_in_prose_are_the_codes():
    settings = load_settings(ENV)
    text = README.read_text(encoding="utf-8")
    assert settings.revocation_check_seconds == 5 and "`REVOCATION_CHECK_SECONDS` (5 s)" in text
    assert settings.identity_creations_per_user_per_day == 10 and "`IDENTITY_CREATIONS_PER_USER_PER_DAY` (10)" in text
    assert settings.token_requests_per_minute == 60 and "`TOKEN_REQUESTS_PER_MINUTE` (60)" in text
    assert settings.identity_changes_per_minute == 10 and "`IDENTITY_CHANGES_PER_MINUTE` (10)" in text
    assert settings.manage_requests_per_minute == 10 and "`MANAGE_REQUESTS_PER_MINUTE` (10)" in text
