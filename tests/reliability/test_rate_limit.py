"""One signed-in user (or a script holding their cookie) cannot spend the ACS resource's issue
limit alone: past TOKEN_REQUESTS_PER_MINUTE token requests they get 429 with Retry-After, and
other users are not affected."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from tests.conftest import Api, new_user
from tests.reliability.support import FIGURES, SECRETS, error_body


def _until_throttled(api: Api, user, limit: int) -> tuple[int, object, float]:
    """Token requests until the first 429; returns how many succeeded before it, the 429, and the
    seconds from sending the first request to receiving the 429 (longer than the bucket had to
    refill between its first and last check)."""
    started = time.monotonic()
    for sent in range(limit * 3 + 10):
        response = api.token(user, fresh=sent % 2 == 0)
        if response.status_code == 429:
            FIGURES.throttled_requests += 1
            return sent, response, time.monotonic() - started
        assert response.status_code == 200, response.text
        SECRETS.add(response.json()["token"])
    pytest.fail(f"no 429 after {limit * 3 + 10} token requests")


def _most_allowed(per_minute: int, elapsed: float) -> int:
    """What TOKEN_REQUESTS_PER_MINUTE lets through in ``elapsed`` seconds at most (shared/rate_limit.py):
    a full bucket of ``per_minute`` plus its refill of ``per_minute`` / 60 a second over the
    time, and one for rounding at the edges."""
    return int(per_minute + per_minute / 60 * elapsed) + 1


def test_default_limit_throttles_a_user_after_60_requests_a_minute(api: Api):
    user = new_user()
    succeeded, throttled, elapsed = _until_throttled(api, user, 60)
    # The bucket holds 60 and refills one a second, so a burst gets at least 60 through, and no
    # more than 60 plus the refill over the burst's duration (a limit of 120 would let ~120 through).
    assert 60 <= succeeded <= _most_allowed(60, elapsed), (succeeded, elapsed)
    assert error_body(throttled)["code"] == "TooManyRequests"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert api.token(new_user()).status_code == 200, "another user must not be throttled"


@pytest.fixture(scope="module")
def strict_api(start_host: Callable[[dict[str, str], str], Api]) -> Api:
    return start_host({"TOKEN_REQUESTS_PER_MINUTE": "3"}, "strict-limit")


def test_configured_limit_is_what_throttles(strict_api: Api):
    user = new_user()
    succeeded, throttled, elapsed = _until_throttled(strict_api, user, 3)
    assert 3 <= succeeded <= min(4, _most_allowed(3, elapsed)), (succeeded, elapsed)
    assert error_body(throttled)["code"] == "TooManyRequests"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 20
    # Still throttled while the bucket is empty, whatever the request asks for.
    again = strict_api.token(user, {"scopes": ["chat"], "expiresInMinutes": 120}, fresh=True)
    assert again.status_code == 429
    FIGURES.throttled_requests += 1
    assert strict_api.token(new_user()).status_code == 200, "another user must not be throttled"
