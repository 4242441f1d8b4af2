"""What an operator sees: the service's metrics, its spans, and the fields its log lines carry.

Every recorder here is a plain function a domain module calls with one line
(``telemetry.token_issued()``). Until telemetry is switched on they return at once, and nothing
of OpenTelemetry is imported: ``import function_app`` stays as cheap as before (cold start, P3).

It is switched on
- in Azure, by :func:`configure` when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set: the Azure
  Monitor OpenTelemetry distro (``configure_azure_monitor``), the path Azure Functions documents
  for Python workers (see ``azure_monitor.py`` for the host.json and app settings it relies on);
- locally, by ``devstack/telemetry_view.py`` (``make dev``), which installs in-memory providers and
  serves what they hold as a page;
- in tests, by :func:`install` with the SDK's in-memory reader and exporter.

Guarantee: no exported attribute can carry a token, key or raw user id. Every attribute value is
a member of a closed vocabulary, a short identifier-shaped name given in code, a number, or a
hash (:func:`user_ref`). Anything else is replaced by ``"other"`` before it reaches the SDK.

Metric names and units are listed in README.md, "Observability".
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # only for type checkers: importing it for real is what the fast path avoids
    from .instruments import Instruments

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"

#: Attribute vocabularies. A value outside its vocabulary is exported as "other".
TOKEN_KINDS = frozenset({"user", "teams", "guest"})
DELETE_REASONS = frozenset({"user_request", "sweep", "inactive", "unmapped", "late_create", "guest_expired"})
DEPENDENCIES = frozenset({"acs", "tables", "identity", "config", "deadline", "unknown"})
REFUSAL_REASONS = frozenset({"rate_limit", "access_policy", "unauthenticated"})
OUTCOMES = frozenset(
    {"success", "not_found", "throttled", "refused", "server_error", "timeout", "unreachable", "auth_failed", "error"}
)
#: Every count of the sweep's summary line (shared/cleanup.py ``SweepReport``), so an operator
#: sees in metrics what the log line says: unmapped identities deleted or kept for another
#: resource, and creates whose outcome nobody learnt (``uncertain``) or may still learn.
SWEEP_RESULTS = (
    "found", "deleted", "already_gone", "retained", "failed", "left", "inactive", "kept_active", "mismatched",
    "guests_deleted", "guests_left", "guests_failed", "unmapped_deleted", "unmapped_kept", "uncertain", "uncertain_pending",
)

_NAME = re.compile(r"[a-z][a-z0-9_.]{0,47}")  # operation / function names given in code
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,47}")  # the contract's error codes ("TooManyRequests")
_MS_CV = re.compile(r"[A-Za-z0-9+/=._-]{4,64}")  # ACS's correlation vector
_INVOCATION_ID = re.compile(r"[0-9A-Fa-f-]{8,64}")
OTHER = "other"

log = logging.getLogger(__name__)


def user_ref(app_user_id: str) -> str:
    """A user as telemetry names them: the same short, non-reversible hash the log lines use
    (shared/token_service.py ``user_ref``), so a span and a log line about one user match."""
    return hashlib.sha256(app_user_id.encode("utf-8")).hexdigest()[:12]


def _one_of(value: object, allowed: frozenset[str]) -> str:
    return value if isinstance(value, str) and value in allowed else OTHER


def _name(value: object) -> str:
    return value if isinstance(value, str) and _NAME.fullmatch(value) else OTHER


def _code(value: object) -> str:
    return value if isinstance(value, str) and _CODE.fullmatch(value) else OTHER


# -- the switch -------------------------------------------------------------------------------

_active: "Instruments | None" = None


def enabled() -> bool:
    return _active is not None


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Switch telemetry on if Application Insights is configured; True when it is on.

    Cheap and import-free when it is not (one dictionary lookup), and idempotent, so the app
    calls it at import. Locally and in tests, whatever :func:`install` set stays in place."""
    if _active is not None:
        return True
    if not (environ.get(CONNECTION_SETTING) or "").strip():
        return False
    from .azure_monitor import configure_azure_monitor_once

    meter_provider, tracer_provider = configure_azure_monitor_once(environ)
    install(meter_provider, tracer_provider)
    return True


def install(meter_provider: Any, tracer_provider: Any) -> None:
    """Record into these OpenTelemetry providers from now on (the local view and tests pass the
    SDK's in-memory reader and exporter through them)."""
    global _active
    from .instruments import Instruments

    _active = Instruments(meter_provider, tracer_provider)
    _install_log_fields()


def uninstall() -> None:
    """Back to the no-op fast path (tests)."""
    global _active
    _active = None


# -- per invocation ----------------------------------------------------------------------------


class _Invocation:
    """What telemetry knows about the running invocation. Child tasks inherit the reference, so a
    dependency failure seen in one is visible to the invocation's later log lines."""

    __slots__ = ("invocation_id", "function", "ms_cv", "span")

    def __init__(self, invocation_id: str, function: str) -> None:
        self.invocation_id = invocation_id
        self.function = function
        self.ms_cv: str | None = None
        self.span: Any = None


_current: ContextVar[_Invocation | None] = ContextVar("acs_tokens_invocation", default=None)


class _NoScope:
    """The disabled path of every scope: nothing to enter, nothing to record."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


_NO_SCOPE = _NoScope()


class _InvocationScope:
    def __init__(self, active: "Instruments", context: Any, function: str | None) -> None:
        self._active = active
        self._context = context
        self._function = function
        self._token: Any = None
        self._span_scope: Any = None

    def __enter__(self) -> _Invocation:
        context = self._context
        invocation_id = str(getattr(context, "invocation_id", "") or "")
        function = _name(self._function or getattr(context, "function_name", None))
        state = _Invocation(invocation_id if _INVOCATION_ID.fullmatch(invocation_id) else "", function)
        trace_context = getattr(context, "trace_context", None)
        self._span_scope = self._active.invocation_span(
            function, state.invocation_id, getattr(trace_context, "trace_parent", "") or "",
            getattr(trace_context, "trace_state", "") or "",
        )
        state.span = self._span_scope.__enter__()
        self._token = _current.set(state)
        return state

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        _current.reset(self._token)
        self._span_scope.__exit__(kind, error, trace)


def invocation(context: Any, function: str | None = None) -> Any:
    """``with telemetry.invocation(context):`` around a function's body: one span per invocation
    (a child of the host's request span in Azure), and the invocation id on every log line the
    invocation writes. ``context`` is the worker's ``func.Context`` (invocation_id,
    function_name, trace_context)."""
    active = _active
    if active is None:
        return _NO_SCOPE
    return _InvocationScope(active, context, function)


def identify_user(app_user_id: str) -> None:
    """Put the caller's hashed reference on the invocation's span (never the id itself)."""
    state = _current.get()
    if _active is None or state is None or state.span is None:
        return
    state.span.set_attribute("app.user_ref", user_ref(app_user_id))


# -- dependency calls --------------------------------------------------------------------------


class _DependencyScope:
    __slots__ = ("_active", "_dependency", "_operation", "_started", "_span")

    def __init__(self, active: "Instruments", dependency: str, operation: str) -> None:
        self._active = active
        self._dependency = dependency
        self._operation = operation

    def __enter__(self) -> None:
        self._span = self._active.dependency_span(self._dependency, self._operation)
        self._started = time.perf_counter()

    def __exit__(self, kind: Any, error: BaseException | None, trace: Any) -> None:
        seconds = time.perf_counter() - self._started
        outcome, status, ms_cv = classify(error)
        if error is not None:
            _tag(error, self._dependency if outcome != "auth_failed" else "identity")
            if ms_cv:
                state = _current.get()
                if state is not None:
                    state.ms_cv = ms_cv
        self._active.dependency_done(self._span, self._dependency, self._operation, seconds, outcome, status, ms_cv)


def dependency(name: str, operation: str) -> Any:
    """``with telemetry.dependency("acs", "issue_token"):`` around one call of a dependency (the
    awaited SDK call, inside the time budget): a client span, its duration by outcome (429s are
    ``throttled``), ACS's MS-CV on failures, and which dependency a later 503 is owed to."""
    active = _active
    if active is None:
        return _NO_SCOPE
    return _DependencyScope(active, _one_of(name, DEPENDENCIES), _name(operation))


def _class_names(error: BaseException) -> set[str]:
    return {kind.__name__ for kind in type(error).__mro__}


def classify(error: BaseException | None) -> tuple[str, int, str | None]:
    """(outcome, HTTP status or 0, MS-CV or None) of a dependency call that ended with ``error``.

    By class name and attributes, so this module never imports azure-core or the SDKs."""
    if error is None:
        return "success", 0, None
    names = _class_names(error)
    response = getattr(error, "response", None)
    status = getattr(error, "status_code", None) or getattr(response, "status_code", None) or 0
    status = status if isinstance(status, int) else 0
    headers = getattr(response, "headers", None)
    ms_cv = None
    if headers is not None:
        try:
            value = headers.get("MS-CV")
        except Exception:  # a foreign headers object: no correlation vector, nothing else lost
            value = None
        ms_cv = value if isinstance(value, str) and _MS_CV.fullmatch(value) else None
    if names & {"CancelledError", "TimeoutError"}:
        return "timeout", 0, None
    if "CredentialUnavailableError" in names or ("ClientAuthenticationError" in names and not status):
        return "auth_failed", status, ms_cv
    if status == 404 or names & {"ResourceNotFoundError", "IdentityNotFound", "IdentityGone"}:
        return "not_found", status, ms_cv
    if status == 429:
        return "throttled", status, ms_cv
    if 400 <= status < 500:
        return "refused", status, ms_cv
    if status >= 500:
        return "server_error", status, ms_cv
    if names & {"ServiceRequestError", "ServiceResponseError", "ClientConnectionError", "OSError"}:
        return "unreachable", 0, None
    return "error", status, ms_cv


_TAG = "_telemetry_dependency"


def _tag(error: BaseException, dependency_name: str) -> None:
    try:
        setattr(error, _TAG, dependency_name)
    except (AttributeError, TypeError):  # an exception type without a __dict__
        pass


def dependency_of(error: BaseException) -> str:
    """Which dependency an error is owed to: the one whose call raised it, found on the error or
    on the exceptions it was raised from or while handling ("unknown" when none)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or len(seen) > 16:
            continue
        seen.add(id(current))
        found = getattr(current, _TAG, None) or getattr(current, "dependency", None)
        if isinstance(found, str) and found in DEPENDENCIES:
            return found
        pending.extend((current.__cause__, current.__context__))
    if "SettingsError" in _class_names(error):
        return "config"
    return "unknown"


def dependency_answered(name: str, status: int) -> None:
    """One HTTP answer of a dependency (every attempt, retries included)."""
    if _active is not None and isinstance(status, int):
        _active.dependency_responses.add(1, {"dependency": _one_of(name, DEPENDENCIES), "status_code": status})


def answer_counter(name: str) -> Any:
    """An azure-core policy for an SDK client's ``per_retry_policies``: counts every answer of
    this dependency, including the 429s and 503s azure-core retried (shared/retry.py)."""
    from .pipeline import AnswerCounter

    return AnswerCounter(_one_of(name, DEPENDENCIES))


def ms_cv() -> str | None:
    """The MS-CV of the last failed ACS call in this invocation (None when there was none)."""
    state = _current.get()
    return state.ms_cv if state is not None else None


# -- what the service did ----------------------------------------------------------------------


def token_issued(kind: str = "user") -> None:
    """ACS issued a token (each one spends the resource's issue limit)."""
    if _active is not None:
        _active.tokens_issued.add(1, {"kind": _one_of(kind, TOKEN_KINDS)})


def token_reused() -> None:
    """A token issued moments ago was handed out again instead of asking ACS."""
    if _active is not None:
        _active.tokens_reused.add(1)


def identity_created() -> None:
    if _active is not None:
        _active.identities_created.add(1)


def identity_deleted(reason: str) -> None:
    """An ACS identity was deleted: ``user_request`` (DELETE /api/identity), ``sweep`` (a deleted
    app user), ``inactive`` (CLEANUP_INACTIVE_DAYS), ``unmapped`` (a new identity whose mapping
    could not be written or lost a race), ``late_create`` (a create that outlived its budget),
    ``guest_expired`` (a Teams meeting guest's identity, once its token expired)."""
    if _active is not None:
        _active.identities_deleted.add(1, {"reason": _one_of(reason, DELETE_REASONS)})


def identity_repaired() -> None:
    """A mapping was pointed at a new identity because ACS no longer had the old one."""
    if _active is not None:
        _active.identities_repaired.add(1)


def refused(reason: str, code: str, function: str | None = None) -> None:
    """A request refused by a rate limit (``rate_limit``), by the access policy
    (``access_policy``) or for lack of a verifiable caller (``unauthenticated``)."""
    if _active is not None:
        _active.requests_refused.add(
            1, {"reason": _one_of(reason, REFUSAL_REASONS), "code": _code(code), "function": _function(function)}
        )


def unavailable(error: BaseException, function: str | None = None, dependency: str | None = None) -> None:
    """A request answered 503, counted by the dependency that caused it: ``dependency`` when
    given (``deadline``: the request ran out of time), else :func:`dependency_of` the error."""
    if _active is not None:
        owed = _one_of(dependency, DEPENDENCIES) if dependency else dependency_of(error)
        _active.responses_unavailable.add(1, {"dependency": owed, "function": _function(function)})


def responded(
    status: int, error: BaseException | None = None, function: str | None = None, dependency: str | None = None
) -> None:
    """One call where the HTTP answer is made (shared/http_responses.py): the status on the
    invocation's span, 503s by dependency, 429s and 401/403s as refusals. ``function`` defaults
    to the running invocation's."""
    active = _active
    if active is None:
        return
    state = _current.get()
    if state is not None and state.span is not None:
        state.span.set_attribute("http.response.status_code", int(status))
        if status >= 500:
            active.mark_failed(state.span, str(int(status)))
    code = getattr(error, "code", None) if error is not None else None
    if status == 503 and error is not None:
        unavailable(error, function, dependency)
    elif status == 429:
        refused("rate_limit", code or "TooManyRequests", function)
    elif status == 403:
        refused("access_policy", code or "Forbidden", function)
    elif status == 401:
        refused("unauthenticated", code or "Unauthenticated", function)


def _function(function: str | None) -> str:
    if function is None:
        state = _current.get()
        function = state.function if state is not None else None
    return _name(function)


def record_sweep(report: Any) -> None:
    """One sweep's summary (shared/cleanup.py ``SweepReport``): each count by result, and its
    duration. Read by attribute so this module does not import the sweep."""
    active = _active
    if active is None:
        return
    dry_run = bool(getattr(report, "dry_run", False))
    for result in SWEEP_RESULTS:
        count = getattr(report, result, 0)
        if isinstance(count, int) and count > 0:
            active.sweep_items.add(count, {"result": result, "dry_run": dry_run})
    seconds = getattr(report, "seconds", None)
    if isinstance(seconds, (int, float)):
        active.sweep_duration.record(float(seconds), {"dry_run": dry_run})


# -- log lines ---------------------------------------------------------------------------------

_log_fields_installed = False


def _install_log_fields() -> None:
    """Every log record written inside an invocation gets ``invocation_id`` (and, after a failed
    ACS call, ``ms_cv``) as attributes: the distro exports them as customDimensions, so each
    failure line in Application Insights names its invocation and what Microsoft support asks for."""
    global _log_fields_installed
    if _log_fields_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        state = _current.get()
        if state is not None:
            if state.invocation_id:
                record.invocation_id = state.invocation_id
            if state.ms_cv:
                record.ms_cv = state.ms_cv
        return record

    logging.setLogRecordFactory(factory)
    _log_fields_installed = True
