"""The one place that turns results and domain errors into HTTP responses.

Every API response is JSON (or empty), carries ``Cache-Control: no-store`` (token responses must
never be cached by a browser or proxy, and identity answers are per-user), and every error has the
contract's shape ``{"error": {"code", "message"}}`` with the fitting status.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

import azure.functions as func

from .errors import (
    DependencyUnavailable,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Throttled,
    Unauthenticated,
)
from . import telemetry
from .settings import SettingsError, get_settings

log = logging.getLogger(__name__)

_STATUS: dict[type[ServiceError], int] = {
    InvalidRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    Throttled: 429,
    DependencyUnavailable: 503,
}

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers={**_HEADERS, **(headers or {})},
    )


def empty_response(status: int = 204) -> func.HttpResponse:
    return func.HttpResponse(status_code=status, headers=dict(_HEADERS))


def error_response(error: ServiceError) -> func.HttpResponse:
    status = next((code for kind, code in _STATUS.items() if isinstance(error, kind)), 500)
    telemetry.responded(status, error, dependency=getattr(error, "dependency", None))
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if error.code == "InvalidBearerToken" else "Bearer"
    return json_response({"error": {"code": error.code, "message": error.message}}, status, headers)


#: Retry-After of a request cut at its deadline: the dependency was slow a moment ago.
DEADLINE_RETRY_AFTER_SECONDS = 5


async def respond(operation: str, work: Callable[[], Awaitable[func.HttpResponse]]) -> func.HttpResponse:
    """Run a handler within the request deadline; domain errors become their status, a request
    past REQUEST_DEADLINE_SECONDS a 503 with Retry-After (the Static Web Apps proxy would otherwise
    cut it at 45 s with a platform error and no Retry-After), a misconfiguration a 503 naming the
    setting in the log (not to the caller), anything unexpected a bare 500 with its trace logged.

    Work still in flight at the deadline is cancelled; the token service keeps a cancelled
    identity creation from leaving an identity nobody maps."""
    deadline: asyncio.Timeout | None = None
    try:
        deadline = asyncio.timeout(get_settings().request_deadline_seconds)
        async with deadline:
            return await work()
    except ServiceError as error:
        if isinstance(error, DependencyUnavailable):
            log.warning("%s: dependency unavailable: %s", operation, error.message)
        return error_response(error)
    except SettingsError as error:
        log.error("%s: the app is misconfigured: %s", operation, error)
        return error_response(DependencyUnavailable("The service is misconfigured.", retry_after=60, code="ServiceMisconfigured", dependency="config"))
    except TimeoutError:
        if deadline is None or not deadline.expired():
            log.exception("%s: unexpected timeout", operation)
            return json_response({"error": {"code": "InternalError", "message": "The service failed unexpectedly."}}, 500)
        log.warning("%s: stopped at the request deadline", operation)
        return error_response(
            DependencyUnavailable(
                "The service took too long to answer; try again.", retry_after=DEADLINE_RETRY_AFTER_SECONDS, code="DeadlineExceeded",
                dependency="deadline",
            )
        )
    except Exception:
        log.exception("%s: unexpected error", operation)
        telemetry.responded(500)
        return json_response({"error": {"code": "InternalError", "message": "The service failed unexpectedly."}}, 500)
