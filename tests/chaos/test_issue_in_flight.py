"""An issue already on its way to ACS must not answer a request that needs a token issued after it
came: a `Cache-Control: no-cache` request (README: "the answer is a token whose issue began after
the request came"), or any request that comes more than the stated bound after a revoke made
through another instance (README: "no instance hands out a token issued before a revoke later
than REVOCATION_CHECK_SECONDS after that revoke was answered").

The instance's ACS answers are held by a proxy after ACS issued the token (counted at the
emulator), which is what a slow network path or a slow ACS front end does; the hold stays inside
the dependency time budget (5 s), so nothing times out."""

from __future__ import annotations

import time

from tests.chaos.conftest import in_background, settle, wait_for
from tests.conftest import Api, Emulator, new_user


def _issues(emulator: Emulator) -> int:
    return emulator.calls("issueAccessToken")


def test_a_no_cache_request_that_comes_while_an_issue_is_in_flight_gets_a_token_issued_after_it_came(
    chaos_host, acs: Emulator
):
    chaos = chaos_host("no-cache-in-flight", acs=True)
    user = new_user()
    assert chaos.api.token(user).status_code == 200  # the identity exists and is remembered
    issued_before = _issues(acs)
    chaos.acs.hold()
    first_worker, first = in_background(lambda: chaos.api.token(user, fresh=True))
    wait_for(lambda: _issues(acs) > issued_before, "ACS to issue the first no-cache token")
    second_worker, second = in_background(lambda: chaos.api.token(user, fresh=True))  # comes after that issue began
    settle(lambda: _issues(acs) > issued_before + 1, 2)  # room for the second request's own issue
    chaos.acs.release()
    first_worker.join(30)
    second_worker.join(30)
    assert first["r"].status_code == 200 and second["r"].status_code == 200
    same = second["r"].json()["token"] == first["r"].json()["token"]
    assert not same, "a no-cache request was answered with a token whose issue began before the request came"
    assert _issues(acs) - issued_before == 2


def test_a_revoke_through_another_instance_stops_pre_revoke_tokens_within_the_bound_even_for_an_issue_in_flight(
    chaos_host, api: Api, acs: Emulator
):
    bound = 1.0  # REVOCATION_CHECK_SECONDS: an operator tightening the bound
    b = chaos_host("revoke-bound", {"REVOCATION_CHECK_SECONDS": "1"}, acs=True)
    user = new_user()
    assert api.token(user).status_code == 200
    assert b.api.token(user).status_code == 200  # B knows the user
    issued_before = _issues(acs)
    b.acs.hold()
    first_worker, first = in_background(lambda: b.api.token(user, fresh=True))
    wait_for(lambda: _issues(acs) > issued_before, "ACS to issue B's token (before the revoke)")
    assert api.call("POST", "/api/token/revoke", user).status_code == 204  # through A, answered now
    answered = time.monotonic()
    time.sleep(bound + 0.5)  # a request that comes well after the bound
    sent_after = time.monotonic() - answered
    late_worker, late = in_background(lambda: b.api.token(user, fresh=True))
    settle(lambda: _issues(acs) > issued_before + 1, 1)
    b.acs.release()
    first_worker.join(30)
    late_worker.join(30)
    assert late["r"].status_code == 200, late["r"].text
    verdict = acs.verify(late["r"].json()["token"])
    assert not verdict["revoked"], (
        f"B handed out a token issued before the revoke to a no-cache request sent {sent_after:.1f} s after the "
        f"revoke was answered (bound {bound:g} s): the request joined an issue in flight from before the revoke"
    )
