"""Fixtures for the telemetry tests: the service's telemetry recording into the OpenTelemetry
SDK's own in-memory metric reader and span exporter (no Application Insights is involved), and
the local view (devstack/telemetry_view.py) running a function host against the local stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
import requests
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import telemetry
from tests.conftest import ROOT, free_port, quiet_schedule, run_log_dir


@dataclass
class Recorded:
    """What the service's telemetry exported, read back from the SDK's in-memory reader/exporter."""

    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """metric name -> [(attributes, point)] (cumulative since the fixture installed them)."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        for resource in (data.resource_metrics if data else []):
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return found

    def units(self) -> dict[str, str]:
        data = self.reader.get_metrics_data()
        return {
            metric.name: metric.unit
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def value(self, name: str, **attributes: Any) -> float:
        """A counter's total, or a histogram's count, over the points carrying these attributes."""
        total = 0.0
        for found, point in self.points().get(name, []):
            if all(found.get(k) == v for k, v in attributes.items()):
                total += point.count if hasattr(point, "bucket_counts") else point.value
        return total

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def exported_values(self) -> list[Any]:
        """Every attribute value and span name that left the process, to search for secrets."""
        values: list[Any] = []
        for points in self.points().values():
            for attributes, _ in points:
                values.extend(attributes.values())
        for span in self.spans():
            values.append(span.name)
            values.extend((span.attributes or {}).values())
            values.extend(event.name for event in span.events)
            for event in span.events:
                values.extend((event.attributes or {}).values())
        return values


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.install(MeterProvider(metric_readers=[reader]), tracer_provider)
    try:
        yield Recorded(reader, exporter)
    finally:
        telemetry.uninstall()


class TelemetryHost:
    """A function host started through the local view's launcher, as `make dev` starts it.

    Its identity table is its own (dropped at the end), so a sweep it runs finds only the users
    its tests marked, and the figures it shows are those tests' alone."""

    #: A per-user token limit low enough that a test reaches it in a few requests.
    TOKEN_REQUESTS_PER_MINUTE = 5

    def __init__(self, stack: dict) -> None:
        from azure.data.tables import TableServiceClient

        self.table_name = f"telemetry{uuid.uuid4().hex[:12]}"
        self.table = TableServiceClient.from_connection_string(stack["tablesConnectionString"]).create_table_if_not_exists(
            self.table_name
        )
        self.functions = f"http://127.0.0.1:{free_port()}"
        self.view = f"http://127.0.0.1:{free_port()}"
        self.log = run_log_dir(stack) / f"functions-telemetry-{self.functions.rsplit(':', 1)[1]}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ, "CLEANUP_SCHEDULE": quiet_schedule(), "IDENTITY_TABLE_NAME": self.table_name,
            "TOKEN_REQUESTS_PER_MINUTE": str(self.TOKEN_REQUESTS_PER_MINUTE),
        }
        env.pop(telemetry.CONNECTION_SETTING, None)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devstack.telemetry_view", "--port", self.view.rsplit(":", 1)[1], "--",
                 "--app-dir", str(ROOT), "--host", "127.0.0.1", "--port", self.functions.rsplit(":", 1)[1],
                 "--settings", stack["functionSettingsFile"]],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the launcher exited with {self.proc.returncode}; see {self.log}")
            try:
                if requests.get(f"{self.functions}/api/health", timeout=5).headers.get("Cache-Control") == "no-store":
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the launcher did not start a function host; see {self.log}")

    def json(self, page: str) -> Any:
        response = requests.get(f"{self.view}/{page}", timeout=10)
        assert response.status_code == 200, response.text[:300]
        return json.loads(response.text)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        try:
            self.table.delete_table()
        except Exception:  # noqa: BLE001 - already gone: nothing to clean up
            pass


@pytest.fixture(scope="session")
def telemetry_host(stack: dict) -> Iterator[TelemetryHost]:
    host = TelemetryHost(stack)
    try:
        yield host
    finally:
        host.stop()
