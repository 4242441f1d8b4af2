"""Throttling, injected faults, added latency and call statistics: what lets tests and benchmarks
see the app behave under the service's limits and failures.

Every API request is also kept, in arrival order, in a bounded call log (``GET
/_emulator/calls``): its operation, the identity it names, its status, and when it arrived and was
answered on the emulator's monotonic clock, so a test can see what a client sent while it was
told to wait. The calls that have arrived and are not yet answered are listed too (``inFlight``;
alone, cheap to poll: ``GET /_emulator/calls/in-flight``), so a test can act while a call is at
ACS instead of guessing when it will be.
A recording, not behaviour: nothing the service answers depends on it.

Throttling, as the service does it, counts requests per operation in a sliding window (30 s by
default) and answers 429 with Retry-After past the limit. On top, ``requestsPerSecond`` is a
single sliding one-second window over all API requests of every operation. Rejected requests do
not count towards the window that rejected them. Retry-After is the whole number of seconds (at least 1) until
the oldest counted request leaves the window, i.e. until a retry can succeed.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from .config import DEFAULT_LIMITS, DELETED_IDENTITY_ANSWERS, OPERATIONS
from .errors import ApiError

#: How many API calls the call log keeps (the oldest go first; ``dropped`` counts them).
CALL_LOG_SIZE = 10_000

#: Faults can name the create operation once for both of its forms.
FAULT_ALIASES = {"createIdentity": ("createIdentity", "createIdentityAndToken")}


class SlidingWindow:
    """At most ``limit`` admissions in any ``seconds``-long window."""

    __slots__ = ("limit", "seconds", "_times")

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._times: deque[float] = deque()

    def admit(self, now: float) -> int | None:
        """None when admitted (and counted), else the Retry-After seconds."""
        horizon = now - self.seconds
        times = self._times
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return None
        return max(1, math.ceil(times[0] + self.seconds - now))


@dataclass
class Fault:
    status: int
    remaining: int
    retry_after: int | None
    operations: frozenset[str] | None
    #: The error code answered (default: one fitting the status, e.g. 503 ServiceUnavailable).
    code: str | None = None
    #: Do the operation first, then answer the fault: a reply lost after the service acted (for
    #: a create, ACS made an identity the caller never learns of).
    commit: bool = False
    #: Matching calls let through before the fault applies (a throttle in the middle of a run).
    after: int = 0

    def matches(self, operation: str) -> bool:
        return self.remaining > 0 and (self.operations is None or operation in self.operations)

    def lets_through(self) -> bool:
        """True (and counted) while the fault still lets a matching call through first."""
        if self.after > 0:
            self.after -= 1
            return True
        return False

    def error(self) -> ApiError:
        code = self.code or FAULT_CODES.get(self.status, "InjectedFault")
        return ApiError(self.status, code, "Injected fault.", retry_after=self.retry_after)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "remaining": self.remaining,
            "retryAfterSeconds": self.retry_after,
            "operations": sorted(self.operations) if self.operations is not None else None,
            "code": self.code,
            "commit": self.commit,
            "after": self.after,
        }


FAULT_CODES = {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}


@dataclass
class Settings:
    """The run-time knobs of ``PUT /_emulator/config``."""

    latency_ms: float = 0.0
    requests_per_second: float | None = None
    limit_scale: float = 1.0
    limit_window_seconds: float = 30.0
    limits: dict[str, int] = field(default_factory=dict)
    #: Real ACS: a revocation "can take up to 15 minutes to propagate" (../ACS_FACTS.md). Tokens
    #: issued before a revocation keep verifying for this long after it (0: at once).
    revocation_delay_seconds: float = 0.0
    #: The answer for a deleted or unknown identity: a key of config.DELETED_IDENTITY_ANSWERS.
    deleted_identity_answer: str = "404"
    #: Real ACS tokens carry whole-second times and no unique id, so identical issues within one
    #: second may return the same string; False makes every token unique (an emulator-only luxury).
    identical_tokens_within_second: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "requestsPerSecond": self.requests_per_second,
            "limitScale": self.limit_scale,
            "limitWindowSeconds": self.limit_window_seconds,
            "limits": self.effective_limits(),
            "revocationDelaySeconds": self.revocation_delay_seconds,
            "deletedIdentityAnswer": self.deleted_identity_answer,
            "identicalTokensWithinSecond": self.identical_tokens_within_second,
        }

    def effective_limits(self) -> dict[str, int]:
        return {
            op: self.limits.get(op, max(1, math.floor(DEFAULT_LIMITS[op] * self.limit_scale))) for op in OPERATIONS
        }


class Governor:
    """Decides, per API request, whether to inject a fault or throttle, and counts outcomes."""

    def __init__(self, defaults: Settings) -> None:
        self._defaults = defaults
        self.settings = Settings(**{**defaults.__dict__, "limits": dict(defaults.limits)})
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.statuses: dict[str, Counter[str]] = {}
        self.throttled: Counter[str] = Counter()
        self.faulted: Counter[str] = Counter()
        #: Operations done and then answered with a fault: what a caller cannot know happened.
        self.committed_then_failed: list[dict[str, Any]] = []
        self.call_log: deque[dict[str, Any]] = deque(maxlen=CALL_LOG_SIZE)
        self.calls_dropped = 0
        self._in_flight: dict[int, dict[str, Any]] = {}
        self._tickets = 0
        self._rebuild_windows()

    def _rebuild_windows(self) -> None:
        limits = self.settings.effective_limits()
        self._windows = {op: SlidingWindow(limits[op], self.settings.limit_window_seconds) for op in OPERATIONS}
        rps = self.settings.requests_per_second
        self._global = SlidingWindow(max(1, math.floor(rps)), 1.0) if rps else None

    # -- configuration -------------------------------------------------------------------

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply the fields present in ``changes``; null resets a field to its start-up value."""
        known = {
            "latencyMs", "requestsPerSecond", "limitScale", "limitWindowSeconds", "limits",
            "revocationDelaySeconds", "deletedIdentityAnswer", "identicalTokensWithinSecond",
        }
        unknown = set(changes) - known
        if unknown:
            raise ApiError(400, "BadRequest", f"Unknown config fields: {sorted(unknown)}; known: {sorted(known)}.")
        s, d = self.settings, self._defaults
        try:
            if "latencyMs" in changes:
                s.latency_ms = d.latency_ms if changes["latencyMs"] is None else max(0.0, float(changes["latencyMs"]))
            if "requestsPerSecond" in changes:
                value = changes["requestsPerSecond"]
                s.requests_per_second = float(value) if value else None
            if "limitScale" in changes:
                value = changes["limitScale"]
                s.limit_scale = d.limit_scale if value is None else float(value)
                if s.limit_scale <= 0:
                    raise ValueError
            if "limitWindowSeconds" in changes:
                value = changes["limitWindowSeconds"]
                s.limit_window_seconds = d.limit_window_seconds if value is None else float(value)
                if s.limit_window_seconds <= 0:
                    raise ValueError
            if "revocationDelaySeconds" in changes:
                value = changes["revocationDelaySeconds"]
                s.revocation_delay_seconds = d.revocation_delay_seconds if value is None else float(value)
                if s.revocation_delay_seconds < 0:
                    raise ValueError
            if "deletedIdentityAnswer" in changes:
                value = changes["deletedIdentityAnswer"]
                s.deleted_identity_answer = d.deleted_identity_answer if value is None else str(value)
                if s.deleted_identity_answer not in DELETED_IDENTITY_ANSWERS:
                    raise ValueError
            if "identicalTokensWithinSecond" in changes:
                value = changes["identicalTokensWithinSecond"]
                if value is not None and not isinstance(value, bool):
                    raise ValueError
                s.identical_tokens_within_second = d.identical_tokens_within_second if value is None else value
            if "limits" in changes:
                value = changes["limits"] or {}
                if set(value) - set(OPERATIONS):
                    raise ValueError
                s.limits = {op: int(n) for op, n in value.items() if n is not None}
                if any(n < 1 for n in s.limits.values()):
                    raise ValueError
        except (TypeError, ValueError):
            raise ApiError(
                400,
                "BadRequest",
                f"Invalid config; limits may name {list(OPERATIONS)}; deletedIdentityAnswer is one of "
                f"{sorted(DELETED_IDENTITY_ANSWERS)}.",
            ) from None
        self._rebuild_windows()

    def add_fault(self, body: dict[str, Any]) -> Fault:
        try:
            status = int(body.get("status", 503))
            count = int(body.get("count", 1))
            retry_after = body.get("retryAfterSeconds", 1)
            retry_after = None if retry_after is None else int(retry_after)
            names = body.get("operations")
            code = body.get("code")
            commit = body.get("commit", False)
            after = body.get("after", 0)
            if not 400 <= status <= 599 or count < 1 or not isinstance(commit, bool):
                raise ValueError
            if isinstance(after, bool) or not isinstance(after, int) or after < 0:
                raise ValueError
            if code is not None and (not isinstance(code, str) or not code):
                raise ValueError
            operations = None
            if names:
                expanded = {op for name in names for op in FAULT_ALIASES.get(name, (name,))}
                if expanded - set(OPERATIONS):
                    raise ValueError
                operations = frozenset(expanded)
        except (TypeError, ValueError, AttributeError):
            raise ApiError(
                400,
                "BadRequest",
                f"A fault is {{status: 400-599, count >= 1, retryAfterSeconds?, operations?: {list(OPERATIONS)}, "
                "code?: string, commit?: boolean, after?: calls let through first (>= 0)}.",
            ) from None
        fault = Fault(
            status=status, remaining=count, retry_after=retry_after, operations=operations, code=code, commit=commit, after=after
        )
        self.faults.append(fault)
        return fault

    def reset(self) -> None:
        self.settings = Settings(**{**self._defaults.__dict__, "limits": dict(self._defaults.limits)})
        self.faults.clear()
        self.calls.clear()
        self.statuses.clear()
        self.throttled.clear()
        self.faulted.clear()
        self.committed_then_failed.clear()
        self.call_log.clear()
        self.calls_dropped = 0
        self._rebuild_windows()

    # -- per request ---------------------------------------------------------------------

    def admit(self, operation: str) -> Fault | None:
        """Raise the injected fault or the 429 this request gets, if any; a fault that answers
        only after the operation is done (``commit``) is returned for the caller to apply."""
        self.calls[operation] += 1
        for fault in self.faults:
            if fault.matches(operation):
                if fault.lets_through():
                    continue
                fault.remaining -= 1
                self.faults = [f for f in self.faults if f.remaining > 0]
                self.faulted[operation] += 1
                if fault.commit:
                    return fault
                raise fault.error()
        now = time.monotonic()
        retry_after = self._global.admit(now) if self._global else None
        if retry_after is None:
            retry_after = self._windows[operation].admit(now)
        if retry_after is not None:
            self.throttled[operation] += 1
            raise ApiError(429, "TooManyRequests", "Too many requests; retry after the given delay.", retry_after=retry_after)
        return None

    def record(self, operation: str, status: int, identity: str | None = None, arrived: float | None = None) -> None:
        """Count the answer; with ``arrived`` (time.monotonic() when the request came), also keep
        the call in the call log, answered now."""
        self.statuses.setdefault(operation, Counter())[str(status)] += 1
        if arrived is None:
            return
        if len(self.call_log) == self.call_log.maxlen:
            self.calls_dropped += 1
        self.call_log.append({
            "operation": operation,
            "identity": identity,
            "status": status,
            "arrivedMs": round(arrived * 1000, 3),
            "answeredMs": round(time.monotonic() * 1000, 3),
        })

    def arrive(self, operation: str | None, identity: str | None, arrived: float) -> int:
        """Note a call as under way until :meth:`leave` (``operation`` None when the path names
        none; ``identity`` the one the path names, if any); returns the ticket to leave with."""
        self._tickets += 1
        self._in_flight[self._tickets] = {
            "operation": operation, "identity": identity, "arrivedMs": round(arrived * 1000, 3),
        }
        return self._tickets

    def leave(self, ticket: int) -> None:
        self._in_flight.pop(ticket, None)

    def recorded_calls(self, operations: set[str] | None = None) -> dict[str, Any]:
        """The call log, oldest first, and the calls under way (only ``operations`` when given).
        Times are milliseconds on the emulator's monotonic clock: compare them with each other,
        not with a wall clock."""
        calls = [c for c in self.call_log if operations is None or c["operation"] in operations]
        return {"calls": calls, "inFlight": self.in_flight(operations), "dropped": self.calls_dropped,
                "nowMs": round(time.monotonic() * 1000, 3)}

    def in_flight(self, operations: set[str] | None = None) -> list[dict[str, Any]]:
        """The calls that have arrived and are not yet answered, oldest first."""
        return [c for c in self._in_flight.values() if operations is None or c["operation"] in operations]

    def stats(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "statuses": {op: dict(c) for op, c in self.statuses.items()},
            "throttled": dict(self.throttled),
            "throttledTotal": sum(self.throttled.values()),
            "faulted": dict(self.faulted),
            "committedThenFailed": list(self.committed_then_failed),
        }
