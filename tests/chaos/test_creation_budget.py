"""The daily budget of identity creations per user (IDENTITY_CREATIONS_PER_USER_PER_DAY) is there
to stop a DELETE + POST loop from making identities without bound. A create ACS refused made no
identity, so it must not spend that budget: otherwise a first-time user who keeps retrying
through a moment of ACS throttling (429, which a flash crowd of first calls produces) is locked
out for a day after ACS has recovered."""

from __future__ import annotations

from tests.chaos.conftest import creates
from tests.conftest import Emulator, expect_error, new_user


def test_creates_acs_refused_with_429_do_not_spend_the_users_daily_creation_budget(chaos_host, acs: Emulator):
    chaos = chaos_host("creation-budget", {"IDENTITY_CREATIONS_PER_USER_PER_DAY": "3"})
    user = new_user()
    before, made_before = acs.identities(), creates(acs)
    acs.fault(429, count=3, operations=["createIdentity"], retry_after=1)
    for _ in range(3):  # the user's client retries as told (Retry-After), ACS throttles each create
        expect_error(chaos.api.token(user), 503, "ServiceUnavailable")
    assert creates(acs) - made_before == 3 and acs.identities() == before, "ACS refused all three: nothing was made"
    acs.clear_faults()
    response = chaos.api.token(user)  # ACS has recovered
    assert response.status_code == 200, (
        "three creates that ACS refused (no identity made) spent the user's whole daily creation budget: "
        f"{response.status_code} {response.text[:200]}"
    )
    assert acs.identities() - before == {response.json()["communicationUserId"]}
