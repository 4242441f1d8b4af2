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

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.own_site import static_web_app

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = Path(os.environ.get("LOCAL_STACK_FILE", REPO_ROOT / "local.stack.json"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "e2e"
SCRIPT = Path(__file__).with_name("refresher_resilience.mjs")
CHROMIUM = Path("/usr/bin/chromium")
SETTINGS = {
    "TOKEN_REUSE_SECONDS": "0",
    "GUEST_ACCESS_ENABLED": "true",
    "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE": "6",
    "GUEST_REQUESTS_PER_MINUTE": "1000",
}

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def resilience() -> dict[str, Any]:
    if not STACK_FILE.exists():
        pytest.fail("the local stack is not running (local.stack.json is missing): run the tests with `make test`")
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get update && apt-get install -y chromium")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH")
    stack = json.loads(STACK_FILE.read_text(encoding="utf-8"))
    with static_web_app(stack, SETTINGS, "refresher-resilience") as site:
        done = subprocess.run(
            ["node", str(SCRIPT), "--stack", str(STACK_FILE), "--site", site, "--artifacts", str(ARTIFACTS)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
        )
    try:
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(f"the resilience walk-through reported nothing (exit {done.returncode}):\n{done.stderr[-4000:]}")
    report["exitCode"] = done.returncode
    report["stderr"] = done.stderr[-4000:]
    return report


def _reached(report: dict[str, Any], step: str) -> dict[str, Any]:
    for seen in report["steps"]:
        if seen["name"] == step:
            return seen
    pytest.fail(f"the walk-through stopped before '{step}': {report.get('error')}\n"
                f"screenshots: {report.get('screenshots')}\n{report['stderr']}")


def test_member_refresh_rides_out_a_503_burst_without_a_visible_failure(resilience: dict[str, Any]) -> None:
    seen = _reached(resilience, "a member's proactive refresh rides out an injected 503 burst without a visible failure")
    *refused, last = seen["statuses"]
    assert refused and set(refused) == {503} and last == 200
    assert seen["errorsShown"] == []
    assert any(text.startswith("Renewing your token: the token service is briefly unavailable.") for text in seen["statusMessages"])
    assert seen["statusMessages"][-1].startswith("Your token was renewed.")


def test_member_refresh_waits_each_retry_after_before_asking_again(resilience: dict[str, Any]) -> None:
    seen = _reached(resilience, "a member's proactive refresh rides out an injected 503 burst without a visible failure")
    assert len(seen["waitsMs"]) == len(seen["statuses"]) - 1
    for waited, retry_after in zip(seen["waitsMs"], seen["retryAfters"]):
        assert retry_after is not None and waited >= retry_after * 1000 - 50


def test_countdown_reads_the_services_clock_when_the_devices_clock_is_ahead(resilience: dict[str, Any]) -> None:
    seen = _reached(resilience, "a member's proactive refresh rides out an injected 503 burst without a visible failure")
    assert seen["countdown"].startswith("(59 min ")


def test_guest_refresh_rides_out_a_429_with_retry_after_without_a_visible_failure(resilience: dict[str, Any]) -> None:
    seen = _reached(resilience, "a guest's proactive refresh rides out a 429 with Retry-After without a visible failure")
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
