"""A person uses the token page in real headless Chromium, through the Static Web Apps CLI, against
the whole local stack (`make dev`). The browser part is tests/e2e/browser_flow.mjs (playwright-core
driving Debian's chromium); it checks each outcome on the page and at the ACS emulator, and
reports what it saw as JSON. Each test here reads as one behaviour of that single walk-through.

The SWA CLI's sign-in page loads jQuery from a public CDN that cannot be reached here: the script
serves that file from the repository's npm copy of jquery, so the CLI's real sign-in page is used.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.e2e.walk import ARTIFACTS, local_stack, reached, walk

pytestmark = pytest.mark.timeout(300)


def _configure_emulator(stack: dict[str, Any], **knobs: Any) -> None:
    """Turn the ACS emulator's knobs (PUT /_emulator/config; null puts one back)."""
    requests.put(f"{stack['acsEndpoint']}/_emulator/config", json=knobs, verify=stack["caCertFile"],
                 timeout=30).raise_for_status()


@pytest.fixture(scope="module")
def walk_through() -> dict[str, Any]:
    """Runs the browser walk-through once; the tests below each check one part of what it saw."""
    stack = local_stack()
    try:
        requests.get(f"{stack['staticWebApp']}/signin.html", timeout=10).raise_for_status()
    except requests.RequestException as error:
        pytest.fail(f"the Static Web Apps CLI at {stack['staticWebApp']} is not answering: {error}")

    # Real ACS "can take up to 15 minutes" to enforce a revocation (../ACS_FACTS.md): the walk-through
    # runs with the emulator doing the same, so nothing it checks relies on enforcement at once.
    _configure_emulator(stack, revocationDelaySeconds=900)
    try:
        return walk("browser_flow.mjs", timeout=240)
    finally:
        _configure_emulator(stack, revocationDelaySeconds=None)


def test_unauthenticated_visit_is_sent_to_sign_in(walk_through: dict[str, Any]) -> None:
    seen = reached(walk_through, "unauthenticated visit is sent to sign-in")
    assert seen["landedOn"] == "/signin.html"


def test_signed_in_person_sees_their_identity_and_a_future_expiry(walk_through: dict[str, Any]) -> None:
    seen = reached(walk_through, "signed in and shown an identity with a future expiry")
    assert seen["expiresInMinutes"] > 0
    assert sorted(seen["scopes"].split(", ")) == ["chat", "voip"]


def test_refresh_gives_a_new_token_for_the_same_identity(walk_through: dict[str, Any]) -> None:
    reached(walk_through, "refresh gives a new token for the same identity")


def test_tokens_issued_before_revoking_are_revoked_at_acs(walk_through: dict[str, Any]) -> None:
    """ACS's record of the revocation, not its enforcement: the walk-through runs while the
    emulator, like real ACS, keeps accepting revoked tokens for 15 minutes."""
    reached(walk_through, "tokens issued before revoking are revoked at ACS")
    reached(walk_through, "a token issued after revoking works")


def test_deleted_identity_is_gone_with_its_tokens(walk_through: dict[str, Any]) -> None:
    reached(walk_through, "deleted identity is gone and its token names a deleted identity")


def test_signed_out_person_is_sent_to_sign_in(walk_through: dict[str, Any]) -> None:
    reached(walk_through, "signed out and sent to sign-in again")


def test_page_keeps_the_console_clean_and_never_shows_a_token(walk_through: dict[str, Any]) -> None:
    assert walk_through["ok"], walk_through.get("error")
    assert walk_through["appConsole"] == []
    assert walk_through["exitCode"] == 0


def test_screenshot_is_kept_as_an_artifact(walk_through: dict[str, Any]) -> None:
    shot = ARTIFACTS / "signed-in.png"
    assert str(shot) in walk_through["screenshots"]
    assert shot.read_bytes().startswith(b"\x89PNG")
