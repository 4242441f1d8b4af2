"""One deadline per request: past REQUEST_DEADLINE_SECONDS the caller gets 503 with Retry-After
(well before the Static Web Apps proxy would cut the request at 45 s), and work cut short leaves
no identity without a mapping. Settings that cannot fit the platform are refused at startup."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from tests.conftest import Api, Emulator, new_user
from tests.trust.conftest import Issuer, error_code

DEADLINE = 5


def _orphans(emulator: Emulator, table) -> set[str]:
    mapped = {e["CommunicationUserId"] for e in table.query_entities("RowKey eq 'identity'")}
    return emulator.identities() - mapped


def _settled(emulator: Emulator, table, expected: set[str], timeout: float = 30) -> set[str]:
    """The orphans once in-flight work has finished (waits for the set to equal ``expected``)."""
    end = time.monotonic() + timeout
    found = _orphans(emulator, table)
    while found != expected and time.monotonic() < end:
        time.sleep(0.25)
        found = _orphans(emulator, table)
    return found


@pytest.fixture(scope="module")
def deadline_api(start_host) -> Api:
    api, _ = start_host({"REQUEST_DEADLINE_SECONDS": str(DEADLINE), "DEPENDENCY_TIMEOUT_SECONDS": "1"}, "deadline")
    return api


@pytest.fixture
def slow_dependencies(emulator: Emulator, issuer: Issuer) -> Iterator[None]:
    """The OIDC issuer answers discovery and JWKS 2.4 s late each, and ACS takes 0.9 s a call: a
    first bearer request's chain (keys 4.8 s, then the create) cannot fit in 5 s, while each call
    stays inside its own 1 s budget, so it is the request deadline that cuts it, mid-create."""
    issuer.set_latency(2.4)
    emulator.configure(latencyMs=900)
    try:
        yield
    finally:
        issuer.set_latency(0)
        emulator.configure(latencyMs=0)


def test_a_slow_chain_is_cut_at_the_deadline_with_503_and_no_orphan(deadline_api: Api, emulator: Emulator, table,
                                                                     issuer: Issuer, slow_dependencies):
    before = _orphans(emulator, table)
    identities_before = emulator.identities()
    caller = issuer.headers()
    started = time.monotonic()
    response = deadline_api.call("POST", "/api/token", headers=caller)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert error_code(response) == "DeadlineExceeded"
    assert int(response.headers["Retry-After"]) >= 1
    assert elapsed < DEADLINE + 1, f"answered after {elapsed:.1f} s"
    assert _settled(emulator, table, before) == before, "an identity was left without a mapping"
    emulator.configure(latencyMs=0)
    again = deadline_api.call("POST", "/api/token", headers=caller)
    assert again.status_code == 200, again.text
    assert emulator.identities() - identities_before == {again.json()["communicationUserId"]}, "one identity, none orphaned"


def test_the_host_serves_again_once_dependencies_are_fast(deadline_api: Api):
    assert deadline_api.token(new_user()).status_code == 200


# -- settings that cannot fit ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "overrides, setting",
    [
        ({"DEPENDENCY_TIMEOUT_SECONDS": "10"}, "DEPENDENCY_TIMEOUT_SECONDS"),
        ({"DEPENDENCY_TIMEOUT_SECONDS": "6", "REQUEST_DEADLINE_SECONDS": "25"}, "DEPENDENCY_TIMEOUT_SECONDS"),
        ({"CLEANUP_TIME_BUDGET_SECONDS": "400"}, "CLEANUP_TIME_BUDGET_SECONDS"),
        ({"AzureFunctionsJobHost__functionTimeout": "00:02:00"}, "CLEANUP_TIME_BUDGET_SECONDS"),
    ],
    ids=["dependency-timeout", "chain-over-deadline", "cleanup-over-host-timeout", "host-timeout-override"],
)
def test_settings_that_cannot_fit_the_platform_are_refused_at_startup(start_host, overrides: dict, setting: str):
    api, host = start_host(overrides, f"refused-{setting.lower()}")
    lines = [line for line in host.log.read_text(errors="replace").splitlines() if "refusing the settings" in line]
    assert len(lines) == 1 and setting in lines[0], lines
    for method, path in (("POST", "/api/token"), ("GET", "/api/health")):
        response = api.call(method, path, new_user())
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "ServiceMisconfigured"
        assert int(response.headers["Retry-After"]) >= 1
