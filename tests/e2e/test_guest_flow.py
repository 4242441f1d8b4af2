"""A Teams meeting guest uses the guest page in real headless Chromium, through the Static Web Apps
CLI, against the local stack's ACS emulator and Azurite. The browser part is
tests/e2e/guest_flow.mjs (playwright-core driving Debian's chromium); it checks each outcome on the
page and at the ACS emulator and reports what it saw as JSON.

Each walk-through has a site of its own (tests/e2e/own_site.py: the SWA CLI in front of a function
host of its own), so the guest budgets are this test's alone whatever other tests spent on the
shared host: one with guest access on, one with it off (the deployment default).

The SWA CLI's sign-in page loads jQuery from a public CDN that cannot be reached here: the script
serves that file from the repository's npm copy of jquery (tests/e2e/browser_kit.mjs)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.own_site import static_web_app
from tests.e2e.walk import ARTIFACTS, local_stack, reached, walk

pytestmark = pytest.mark.timeout(300)


def _walk(scenario: str, site: str) -> dict[str, Any]:
    return walk("guest_flow.mjs", "--site", site, "--scenario", scenario, timeout=240)


@pytest.fixture(scope="module")
def guest_walk() -> dict[str, Any]:
    stack = local_stack()
    with static_web_app(stack, {"GUEST_ACCESS_ENABLED": "true"}, "guests-on") as site:
        return _walk("on", site)


@pytest.fixture(scope="module")
def guest_access_off_walk() -> dict[str, Any]:
    stack = local_stack()
    with static_web_app(stack, {"GUEST_ACCESS_ENABLED": "false"}, "guests-off") as site:
        return _walk("off", site)


def test_sign_in_page_leads_a_guest_to_the_guest_page_without_signing_in(guest_walk: dict[str, Any]) -> None:
    assert reached(guest_walk, "the sign-in page leads to the guest page without signing in")["landedOn"] == "/guest.html"


def test_a_name_with_markup_is_refused_in_the_page_and_nothing_is_sent(guest_walk: dict[str, Any]) -> None:
    seen = reached(guest_walk, "a name with markup is refused in the page and nothing is sent")
    assert seen["requestsSent"] == 0
    assert "not allowed" in seen["error"]


def test_guest_gets_a_voip_join_token_of_at_most_60_minutes_with_a_countdown(guest_walk: dict[str, Any]) -> None:
    seen = reached(guest_walk, "a guest gets a voip.join token of at most 60 minutes, shown with its countdown")
    assert seen["scopes"] == "voip.join"
    assert seen["acsScopes"] == ["voip.join"]
    assert 0 < seen["minutesLeft"] <= 60.5
    assert seen["acsMinutes"] <= 60.5
    assert seen["displayName"].startswith("Ada Lovelace-")
    assert seen["requestsSent"] == 1


def test_guest_page_says_joining_is_the_calling_sdks_work(guest_walk: dict[str, Any]) -> None:
    seen = reached(guest_walk, "a guest gets a voip.join token of at most 60 minutes, shown with its countdown")
    assert "Calling SDK" in seen["joinExplainer"]
    assert "callAgent.join" in seen["joinExplainer"]


def test_guest_page_keeps_the_console_clean_and_never_shows_a_token(guest_walk: dict[str, Any]) -> None:
    assert guest_walk["ok"], guest_walk.get("error")
    assert guest_walk["appConsole"] == []
    assert guest_walk["exitCode"] == 0


def test_guest_screenshot_is_kept_as_an_artifact(guest_walk: dict[str, Any]) -> None:
    shot = ARTIFACTS / "guest-token.png"
    assert str(shot) in guest_walk["screenshots"]
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_with_guest_access_off_the_page_says_so_and_makes_no_identity(guest_access_off_walk: dict[str, Any]) -> None:
    seen = reached(guest_access_off_walk, "with guest access off the page says so and asks once")
    assert seen["requestsSent"] == 1
    assert "guest access is off" in seen["error"]
    assert guest_access_off_walk["ok"], guest_access_off_walk.get("error")
    assert guest_access_off_walk["appConsole"] == []
