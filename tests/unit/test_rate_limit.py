"""The per-user token limit holds over time: a steady caller gets the configured rate, not more."""

from __future__ import annotations

import pytest

from shared import rate_limit
from shared import ttl_cache
from shared.rate_limit import PerUserRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Time that the test moves, so ten minutes of traffic take no time (and no sleep)."""
    fake = Clock()
    monkeypatch.setattr(rate_limit.time, "monotonic", fake)
    monkeypatch.setattr(ttl_cache.time, "monotonic", fake)
    return fake


def test_steady_caller_gets_the_configured_rate_after_the_burst(clock: Clock):
    limiter = PerUserRateLimiter(per_minute=60)
    allowed = 0
    for _ in range(6000):  # one request every 0.1 s for ten minutes
        allowed += limiter.check("github|steady") == 0
        clock.now += 0.1
    assert 60 + 600 - 2 <= allowed <= 60 + 600 + 1  # the initial burst, then one a second


def test_throttled_caller_is_told_when_to_come_back(clock: Clock):
    limiter = PerUserRateLimiter(per_minute=3)
    assert [limiter.check("github|a") for _ in range(3)] == [0, 0, 0]
    wait = limiter.check("github|a")
    assert wait >= 1
    assert limiter.check("github|b") == 0  # other users are not affected
    clock.now += wait
    assert limiter.check("github|a") == 0
