"""The sweep pauses all its workers on ACS's Retry-After, and stops taking work at its time budget
(CLEANUP_TIME_BUDGET_SECONDS), "inside the function timeout". A pause must not carry it past the
budget: a Retry-After longer than what is left of the budget ends the run (the rest is the next
run's, counted as left), it does not sleep through it."""

from __future__ import annotations

import re
import uuid

from tests.chaos.conftest import ADMIN, run_sweep
from tests.conftest import Emulator, new_user


def test_a_long_retry_after_from_acs_does_not_carry_the_sweep_past_its_time_budget(chaos_host, acs: Emulator):
    budget = 5
    sweeper = chaos_host("sweep-long-pause", {"CLEANUP_TIME_BUDGET_SECONDS": str(budget),
                                              "IDENTITY_TABLE_NAME": f"chaos{uuid.uuid4().hex[:12]}"})
    user = new_user()
    identity = sweeper.api.token(user).json()["communicationUserId"]
    marked = sweeper.api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json={"appUserIds": [user.app_user_id]})
    assert marked.status_code == 202
    acs.fault(429, count=1, operations=["deleteIdentity"], retry_after=120)  # ACS: "come back in two minutes"
    try:
        # The budget is 5 s; one dependency call may run over it by its own budget (5 s). Waiting
        # 45 s for the summary is generous; the 120 s pause would blow through it.
        summary = run_sweep(sweeper.host, seconds=45)
    except AssertionError as error:
        raise AssertionError(
            f"the sweep (time budget {budget} s) logged no summary within 45 s: it is asleep on ACS's "
            "Retry-After of 120 s, past its budget (and, with a longer one, past the function timeout, "
            "which kills it before it retires anything or reports)"
        ) from error
    assert re.search(r" left=1 ", summary), summary
    assert identity in acs.identities()  # left for the next run, not lost
