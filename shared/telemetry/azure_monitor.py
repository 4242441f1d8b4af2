"""Telemetry to Application Insights, the way Azure Functions documents it for Python apps.

Imported only when APPLICATIONINSIGHTS_CONNECTION_STRING is set (it loads the OpenTelemetry SDK
and the Azure Monitor exporters, which the disabled path must not pay for at cold start).

The documented path ("Use OpenTelemetry with Azure Functions",
https://learn.microsoft.com/azure/azure-functions/opentelemetry-howto, Python pivot), and how
this deployment takes it:
- host.json ``"telemetryMode": "OpenTelemetry"``: the Functions host emits its own request spans
  and logs as OpenTelemetry to the APPLICATIONINSIGHTS_CONNECTION_STRING resource. The article
  marks OpenTelemetry support as preview (some versions of it: Flex Consumption plan only); it
  lists only HTTP, Service Bus and Event Hubs triggers as covered, so the timer-triggered sweep
  gets no host span and its own span (telemetry.invocation) is the root.
- app setting ``PYTHON_ENABLE_OPENTELEMETRY=true``: the Python worker makes the host's trace
  context current for each invocation, so this process's spans are children of the host's
  request, and tells the host the worker sends its own logs (no duplicate log rows).
  (Azure/azure-functions-python-worker: ``invocation_request`` attaches the invocation's
  traceparent when this setting is on.)
- the distro in code, ``configure_azure_monitor()`` in the app (the article's "manually enable"
  variant) rather than ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true``, with which the worker
  would call it itself with every default: the automatic Azure SDK spans (their URLs carry
  identity ids, and they duplicate telemetry.dependency's spans), the web-framework and HTTP
  client instrumentations, live metrics and performance counters. Here those are off.
- Entra ingestion (the Application Insights resource has local auth disabled): the exporter reads
  ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` (``ClientId=…;Authorization=AAD``, already set for
  the host) and authenticates with that managed identity (azure-monitor-opentelemetry-exporter,
  ``export/_base.py`` ``_get_authentication_credential``).
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

#: Instrumentations the distro would switch on by default; this service uses none of them.
_INSTRUMENTATIONS_OFF = ("azure_sdk", "django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3", "httpx")

_lock = threading.Lock()
_providers: tuple[Any, Any] | None = None


def configure_azure_monitor_once(environ: Mapping[str, str]) -> tuple[Any, Any]:
    """Configure the distro once per process; return the (meter, tracer) providers it installed.

    When the process already has an SDK tracer provider, the worker configured the distro
    before the app was imported (it does with ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY``,
    and releases of it from 2024 did with ``PYTHON_ENABLE_OPENTELEMETRY``:
    Azure/azure-functions-python-worker ``dispatcher.py`` ``initialize_azure_monitor``). Its
    providers are used as they are: a second configuration would export every log line twice.
    Only the automatic Azure SDK spans it switched on are switched off again (their URLs carry
    ACS identity ids)."""
    global _providers
    with _lock:
        if _providers is None:
            from opentelemetry import metrics, trace
            from opentelemetry.sdk.trace import TracerProvider

            if isinstance(trace.get_tracer_provider(), TracerProvider):
                from azure.core.settings import settings

                settings.tracing_implementation = None
            else:
                from azure.monitor.opentelemetry import configure_azure_monitor

                configure_azure_monitor(
                    connection_string=environ["APPLICATIONINSIGHTS_CONNECTION_STRING"],
                    instrumentation_options={name: {"enabled": False} for name in _INSTRUMENTATIONS_OFF},
                    enable_live_metrics=False,
                    enable_performance_counters=False,
                )
            _providers = (metrics.get_meter_provider(), trace.get_tracer_provider())
        return _providers
