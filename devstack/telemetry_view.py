"""The service's telemetry on a local page, so a developer sees what an operator will.

    python -m devstack.telemetry_view [--host 127.0.0.1] [--port 7094] -- FUNCHOST-ARGS…

Runs the local function host (devstack.funchost, with FUNCHOST-ARGS) in this process, with the
service's telemetry (shared/telemetry) recording into the OpenTelemetry SDK's in-memory metric
reader and a bounded span exporter instead of Application Insights, and serves them:

    /              a page: every metric of README "Observability" with its points, the latest spans
                   and the latest warning/error log lines (refreshes every 5 s)
    /metrics.json  the metrics, cumulative since the host started
    /spans.json    the latest 500 spans (name, kind, trace and parent ids, duration, attributes)
    /logs.json     the latest 200 warning/error lines of the app, with invocation id and MS-CV

The figures are the ones the deployed app exports (same instruments, names and attributes); only
the destination differs. Loopback only, no authentication: a development tool, never deployed.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import sys
import threading
from collections import deque
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from shared import telemetry
from shared.telemetry.instruments import METRICS

MAX_SPANS = 500
MAX_LOG_LINES = 200


class RecentSpans(SpanExporter):
    """Keeps the latest spans, as plain dicts (the SDK's own in-memory exporter keeps all)."""

    def __init__(self) -> None:
        self._spans: deque[dict[str, Any]] = deque(maxlen=MAX_SPANS)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rows = [_span_row(span) for span in spans]
        with self._lock:
            self._spans.extend(rows)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def latest(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self._spans))


def _span_row(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "traceId": format(context.trace_id, "032x"),
        "spanId": format(context.span_id, "016x"),
        "parentId": format(parent.span_id, "016x") if parent is not None else None,
        "start": datetime.fromtimestamp((span.start_time or 0) / 1e9, timezone.utc).isoformat(),
        "durationMs": round(((span.end_time or 0) - (span.start_time or 0)) / 1e6, 2),
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


class RecentFailures(logging.Handler):
    """The app's latest warning and error lines with the fields telemetry adds to them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lines: deque[dict[str, Any]] = deque(maxlen=MAX_LOG_LINES)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break the app's request
            message = str(record.msg)
        self._lines.append({
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "invocation_id": getattr(record, "invocation_id", None),
            "ms_cv": getattr(record, "ms_cv", None),
        })

    def latest(self) -> list[dict[str, Any]]:
        return list(reversed(self._lines))


class View:
    """The in-memory providers the service records into, and what the page shows of them."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.spans = RecentSpans()
        self.failures = RecentFailures()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        telemetry.install(MeterProvider(metric_readers=[self.reader]), tracer_provider)
        # On the app's own loggers: the function host replaces the root logger's handlers.
        for name in ("shared", "function_app"):
            logging.getLogger(name).addHandler(self.failures)

    def metrics(self) -> list[dict[str, Any]]:
        """Every instrument of the catalogue (those not yet recorded with no points), in order."""
        points: dict[str, list[dict[str, Any]]] = {}
        data = self.reader.get_metrics_data()
        for resource in (data.resource_metrics if data else []):
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points[metric.name] = [_point(p) for p in metric.data.data_points]
        return [
            {"name": name, "kind": kind, "unit": unit, "description": description, "points": points.get(name, [])}
            for name, (kind, unit, description) in METRICS.items()
        ]


def _point(point: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"attributes": dict(point.attributes or {})}
    if hasattr(point, "bucket_counts"):
        row.update(count=point.count, sum=round(point.sum, 6), min=point.min, max=point.max)
    else:
        row["value"] = point.value
    return row


def _page(view: View) -> str:
    def cell(value: Any) -> str:
        return f"<td>{html.escape(str(value))}</td>"

    rows = []
    for metric in view.metrics():
        points = metric["points"] or [{"attributes": {}, "value": "no data yet"}]
        for point in points:
            attributes = ", ".join(f"{k}={v}" for k, v in sorted(point["attributes"].items()))
            figure = point.get("value")
            if figure is None:
                figure = f"count={point['count']} sum={point['sum']:.4f} min={point['min']} max={point['max']}"
            rows.append("<tr>" + cell(metric["name"]) + cell(metric["unit"]) + cell(attributes) + cell(figure) + "</tr>")
    spans = [
        "<tr>" + cell(s["start"]) + cell(s["name"]) + cell(s["kind"]) + cell(s["durationMs"]) + cell(s["status"])
        + cell(s["traceId"][:12]) + cell(", ".join(f"{k}={v}" for k, v in sorted(s["attributes"].items()))) + "</tr>"
        for s in view.spans.latest()[:50]
    ]
    lines = [
        "<tr>" + cell(line["time"]) + cell(line["level"]) + cell(line["invocation_id"] or "") + cell(line["ms_cv"] or "")
        + cell(line["message"]) + "</tr>"
        for line in view.failures.latest()[:50]
    ]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content=5>"
        "<title>ACS token service: telemetry</title><style>body{font:14px system-ui;margin:1em}"
        "table{border-collapse:collapse;margin-bottom:2em}td,th{border:1px solid #bbb;padding:2px 6px;"
        "text-align:left;vertical-align:top}</style></head><body>"
        "<h1>Telemetry of the local function host</h1><p>The same instruments the app exports to "
        "Application Insights (README, Observability). JSON: <a href=metrics.json>metrics</a>, "
        "<a href=spans.json>spans</a>, <a href=logs.json>log lines</a>.</p>"
        "<h2>Metrics</h2><table><tr><th>name<th>unit<th>attributes<th>value</tr>" + "".join(rows) + "</table>"
        "<h2>Latest spans</h2><table><tr><th>start<th>name<th>kind<th>ms<th>status<th>trace<th>attributes</tr>"
        + "".join(spans) + "</table>"
        "<h2>Latest warnings and errors</h2><table><tr><th>time<th>level<th>invocation<th>MS-CV<th>message</tr>"
        + "".join(lines) + "</table></body></html>"
    )


def serve(view: View, host: str, port: int) -> ThreadingHTTPServer:
    """Serve the view from a daemon thread (the function host owns the main thread's loop)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?")[0]
            if path == "/":
                self._send(200, "text/html; charset=utf-8", _page(view))
            elif path == "/metrics.json":
                self._send(200, "application/json", json.dumps({"metrics": view.metrics()}))
            elif path == "/spans.json":
                self._send(200, "application/json", json.dumps({"spans": view.spans.latest()}))
            elif path == "/logs.json":
                self._send(200, "application/json", json.dumps({"lines": view.failures.latest()}))
            else:
                self._send(404, "application/json", json.dumps({"error": {"code": "NotFound", "message": "No such page."}}))

        def _send(self, status: int, content_type: str, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:  # the page refreshes every 5 s: keep the log quiet
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="telemetry-view", daemon=True).start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    split = args.index("--") if "--" in args else len(args)
    parser = argparse.ArgumentParser(prog="python -m devstack.telemetry_view", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7094)
    own = parser.parse_args(args[:split])
    view = View()
    try:
        server = serve(view, own.host, own.port)
    except OSError as error:
        print(f"telemetry view: cannot listen on {own.host}:{own.port}: {error}", file=sys.stderr)
        return 1
    print(f"telemetry view on http://{own.host}:{server.server_address[1]}/", flush=True)
    from devstack.funchost.__main__ import main as function_host

    try:
        return function_host(args[split + 1:])
    finally:
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
