"""An invalid setting fails every request with 503 ServiceMisconfigured (and Retry-After), never
a 500 or a half-working app; the log names the setting, the caller is told nothing more, and
nothing reaches ACS."""

from __future__ import annotations

from typing import Callable

import pytest

from tests.conftest import Api, Emulator, expect_error, new_user

INVALID = [
    ("TOKEN_DEFAULT_MINUTES", "5"),
    ("ACS_ENDPOINT", "http://127.0.0.1:1"),
    ("IDENTITY_TABLE_NAME", "not-a-table"),
    ("ACS_DEFAULT_SCOPES", "chat.join"),
    ("CLEANUP_CONCURRENCY", "0"),
    ("TRUST_CLIENT_PRINCIPAL", "maybe"),
]


@pytest.mark.parametrize("name, value", INVALID, ids=[n for n, _ in INVALID])
def test_an_invalid_setting_gives_503_service_misconfigured_naming_it_only_in_the_log(
    start_host: Callable[[dict[str, str], str], Api], emulator: Emulator, name: str, value: str
):
    api = start_host({name: value}, f"misconfigured-{name.lower()}")
    calls = emulator.calls()
    user = new_user()
    for method, path in (("POST", "/api/token"), ("GET", "/api/identity"), ("DELETE", "/api/identity"), ("GET", "/api/health")):
        message = expect_error(api.call(method, path, user), 503, "ServiceMisconfigured")
        assert name not in message and value not in message, "the caller is not told the app's configuration"
    assert emulator.calls() == calls, "a misconfigured app must not call ACS"
    named = [line for line in api.log.read_text().splitlines() if "misconfigured" in line and name in line]
    assert named, f"no log line names {name}"
