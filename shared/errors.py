"""Domain errors. Each carries a stable code and a human sentence; shared/http_responses.py is the
one place that turns them into HTTP statuses and JSON bodies, so no handler can forget one."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service reports to a caller. Messages must never carry tokens,
    keys, raw principals or stack traces."""

    code = "ServiceError"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidRequest(ServiceError):
    """The caller sent something malformed or outside the allowed values (400)."""

    code = "InvalidRequest"


class Unauthenticated(ServiceError):
    """No caller identity, or one that could not be verified (401)."""

    code = "Unauthenticated"


class Forbidden(ServiceError):
    """The caller is known but not allowed to do this (403)."""

    code = "Forbidden"


class NotFound(ServiceError):
    """The thing asked for does not exist (404)."""

    code = "NotFound"


class PayloadTooLarge(ServiceError):
    """The request body is over the service's limit (413)."""

    code = "PayloadTooLarge"


class Throttled(ServiceError):
    """The caller (or the service towards ACS) is over a rate limit (429 with Retry-After)."""

    code = "TooManyRequests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


class DependencyUnavailable(ServiceError):
    """ACS, Table Storage or the identity endpoint failed or timed out (503 with Retry-After)."""

    code = "ServiceUnavailable"

    def __init__(self, message: str, *, retry_after: int = 5, code: str | None = None, dependency: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))
        #: Which dependency the 503 is owed to when the error itself says (telemetry counts 503s
        #: by it): "deadline" or "config"; otherwise telemetry reads it off the failed call.
        self.dependency = dependency
