"""The page's tokenRefresher rides out passing failures in real headless Chromium, through the
Static Web Apps CLI: the credential's own proactive refresh meets an injected 503 burst at the ACS
emulator (member page) and the service's guest budget answering 429 with Retry-After (guest page),
and the person sees what is happening but no failure. The browser part is
tests/e2e/refresher_resilience.mjs; it moves the browser's clock (Playwright's page.clock) to the
credential's refresh time, and reports what the page did as JSON.

The site is this test's own (tests/e2e/own_site.py): a function host with TOKEN_REUSE_SECONDS=0, so
every refresh reaches ACS, and a guest budget of 6 per client per minute, so a Retry-After is at
most 10 s. Nothing is mocked: the 503s are the emulator's, the 429 the service's own budget."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.own_site import static_web_app
from tests.e2e.walk import local_stack, reached, walk

SETTINGS = {
    "TOKEN_REUSE_SECONDS": "0",
    "GUEST_ACCESS_ENABLED": "true",
    "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE": "6",
    "GUEST_REQUESTS_PER_MINUTE": "1000",
}

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def resilience() -> dict[str, Any]:
    with static_web_app(local_stack(), SETTINGS, "refresher-resilience") as site:
        return walk("refresher_resilience.mjs", "--site", site, timeout=300)


def test_member_refresh_rides_out_a_503_burst_without_a_visible_failure(resilience: dict[str, Any]) -> None:
    seen = reached(resilience, "a member's proactive refresh rides out an injected 503 burst without a visible failure")
    *refused, last = seen["statuses"]
    assert refused and set(refused) == {503} and last == 200
    assert seen["errorsShown"] == []
    assert any(text.startswith("Renewing your token: the token service is briefly unavailable.") for text in seen["statusMessages"])
    assert seen["statusMessages"][-1].startswith("Your token was renewed.")


def test_member_refresh_waits_each_retry_after_before_asking_again(resilience: dict[str, Any]) -> None:
    seen = reached(resilience, "a member's proactive refresh rides out an injected 503 burst without a visible failure")
    assert len(seen["waitsMs"]) == len(seen["statuses"]) - 1
    for waited, retry_after in zip(seen["waitsMs"], seen["retryAfters"]):
        assert retry_after is not None and waited >= retry_after * 1000 - 50


def test_countdown_reads_the_services_clock_when_the_devices_clock_is_ahead(resilience: dict[str, Any]) -> None:
    seen = reached(resilience, "a member's proactive refresh rides out an injected 503 burst without a visible failure")
    assert seen["countdown"].startswith("(59 min ")


def test_guest_refresh_rides_out_a_429_with_retry_after_without_a_visible_failure(resilience: dict[str, Any]) -> None:
    seen = reached(resilience, "a guest's proactive refresh rides out a 429 with Retry-After without a visible failure")
    *refused, last = seen["statuses"]
    assert refused and set(refused) == {429} and last == 200
    for waited, retry_after in zip(seen["waitsMs"], seen["retryAfters"]):
        assert retry_after is not None and 1 <= retry_after <= 10 and waited >= retry_after * 1000 - 50
    assert seen["errorsShown"] == []
    assert any(text.startswith("Renewing your token: the token service is pacing requests.") for text in seen["statusMessages"])
    assert seen["statusMessages"][-1].startswith("Your guest token was renewed")


def test_resilience_walk_keeps_the_console_clean(resilience: dict[str, Any]) -> None:
    assert resilience["ok"], resilience.get("error")
    assert resilience["appConsole"] == []
    assert resilience["exitCode"] == 0
