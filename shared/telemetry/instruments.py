"""The service's OpenTelemetry instruments and spans, built once when telemetry is switched on.

Imported only then (shared/telemetry/__init__.py keeps the disabled path free of OpenTelemetry).
Names, units and attributes are the operator's contract: README.md, "Observability", lists them,
and tests/telemetry checks both agree.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SCOPE = "acs_token_service"
PREFIX = "acs_tokens."

#: Bucket bounds for call durations in seconds (the SDK's defaults are meant for milliseconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SWEEP_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 240.0, 600.0)

#: name -> (kind, unit, description). The README table is generated from the same facts.
METRICS: dict[str, tuple[str, str, str]] = {
    "acs_tokens.tokens.issued": ("counter", "{token}", "Tokens ACS issued (each spends the resource's issue limit); kind=user|teams"),
    "acs_tokens.tokens.reused": ("counter", "{token}", "Tokens issued moments ago and handed out again without calling ACS"),
    "acs_tokens.identities.created": ("counter", "{identity}", "ACS identities created and mapped"),
    "acs_tokens.identities.deleted": ("counter", "{identity}", "ACS identities deleted, by reason"),
    "acs_tokens.identities.repaired": ("counter", "{identity}", "Mappings pointed at a new identity because ACS had lost the old one"),
    "acs_tokens.acs.call.duration": ("histogram", "s", "ACS calls: duration by operation and outcome (throttled = 429)"),
    "acs_tokens.table.call.duration": ("histogram", "s", "Table Storage calls: duration by operation and outcome"),
    "acs_tokens.dependency.responses": ("counter", "{response}", "Every HTTP answer of ACS or Table Storage, retried attempts included, by status code"),
    "acs_tokens.responses.unavailable": ("counter", "{response}", "Requests answered 503, by the dependency that caused it"),
    "acs_tokens.requests.refused": ("counter", "{request}", "Requests refused by a rate limit, the access policy or for lack of a caller"),
    "acs_tokens.sweep.items": ("counter", "{item}", "What the sweep of deleted users did, by result"),
    "acs_tokens.sweep.duration": ("histogram", "s", "How long one sweep ran"),
}

_DEPENDENCY_METRIC = {"acs": "acs_tokens.acs.call.duration", "tables": "acs_tokens.table.call.duration"}
_PEER = {"acs": "Azure Communication Services", "tables": "Azure Table Storage", "identity": "Managed identity endpoint"}
_propagator = TraceContextTextMapPropagator()


class Instruments:
    def __init__(self, meter_provider: Any, tracer_provider: Any) -> None:
        meter = meter_provider.get_meter(SCOPE)
        self.tracer = tracer_provider.get_tracer(SCOPE)

        def counter(name: str) -> Any:
            _, unit, description = METRICS[name]
            return meter.create_counter(name, unit=unit, description=description)

        def histogram(name: str, buckets: tuple[float, ...]) -> Any:
            _, unit, description = METRICS[name]
            return meter.create_histogram(
                name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
            )

        self.tokens_issued = counter("acs_tokens.tokens.issued")
        self.tokens_reused = counter("acs_tokens.tokens.reused")
        self.identities_created = counter("acs_tokens.identities.created")
        self.identities_deleted = counter("acs_tokens.identities.deleted")
        self.identities_repaired = counter("acs_tokens.identities.repaired")
        self.dependency_responses = counter("acs_tokens.dependency.responses")
        self.responses_unavailable = counter("acs_tokens.responses.unavailable")
        self.requests_refused = counter("acs_tokens.requests.refused")
        self.sweep_items = counter("acs_tokens.sweep.items")
        self.sweep_duration = histogram("acs_tokens.sweep.duration", SWEEP_BUCKETS)
        self._durations = {
            dependency: histogram(name, DURATION_BUCKETS) for dependency, name in _DEPENDENCY_METRIC.items()
        }

    # -- spans ----------------------------------------------------------------------------------

    def invocation_span(self, function: str, invocation_id: str, trace_parent: str, trace_state: str) -> Any:
        """The invocation's span, made current. In Azure the worker has already made the host's
        request span current (PYTHON_ENABLE_OPENTELEMETRY), so this is its child; elsewhere it
        continues the caller's ``traceparent`` when there is one, as the host would."""
        attributes = {"faas.name": function}
        if invocation_id:
            attributes["faas.invocation_id"] = invocation_id
        if trace.get_current_span().get_span_context().is_valid:
            return self.tracer.start_as_current_span(
                function, kind=SpanKind.INTERNAL, attributes=attributes, record_exception=False
            )
        parent = None
        if trace_parent:
            carrier = {"traceparent": trace_parent, "tracestate": trace_state}
            parent = _propagator.extract(carrier)
        # record_exception=False: an exception's text is not vetted like the attributes are.
        return self.tracer.start_as_current_span(
            function, context=parent, kind=SpanKind.SERVER, attributes=attributes, record_exception=False
        )

    @staticmethod
    def mark_failed(span: Any, description: str) -> None:
        span.set_status(Status(StatusCode.ERROR, description))

    def dependency_span(self, dependency: str, operation: str) -> Any:
        return self.tracer.start_span(
            f"{dependency} {operation}",
            kind=SpanKind.CLIENT,
            attributes={"dependency": dependency, "operation": operation, "peer.service": _PEER.get(dependency, dependency)},
        )

    def dependency_done(
        self, span: Any, dependency: str, operation: str, seconds: float, outcome: str, status: int, ms_cv: str | None
    ) -> None:
        attributes: dict[str, Any] = {"operation": operation, "outcome": outcome}
        if status:
            attributes["status_code"] = status
        histogram = self._durations.get(dependency)
        if histogram is not None:
            histogram.record(seconds, attributes)
        span.set_attribute("outcome", outcome)
        if status:
            span.set_attribute("http.response.status_code", status)
        if ms_cv:
            span.set_attribute("acs.ms_cv", ms_cv)
        # ACS's 404 is how the service learns an identity was deleted: an answer, not a failure.
        if outcome not in ("success", "not_found"):
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()
