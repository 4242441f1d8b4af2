"""Telemetry is on only where Application Insights is configured, costs nothing at cold start
where it is not, and never exports a token, a key or a raw user id."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from shared import telemetry
from shared.errors import DependencyUnavailable, Forbidden, InvalidRequest, Throttled
from tests.conftest import ROOT

from .conftest import Recorded

_EXERCISE_EVERY_RECORDER = """
from shared import telemetry
from shared.errors import DependencyUnavailable
class Context:
    invocation_id = "0b4c1e9e-1111-2222-3333-444455556666"
    function_name = "issue_token"
    trace_context = None
on = telemetry.configure()
with telemetry.invocation(Context()):
    with telemetry.dependency("acs", "issue_token"):
        pass
    telemetry.identify_user("github|someone")
    telemetry.token_issued(); telemetry.token_reused(); telemetry.identity_created()
    telemetry.identity_deleted("sweep"); telemetry.identity_repaired()
    telemetry.refused("rate_limit", "TooManyRequests"); telemetry.responded(503, DependencyUnavailable("x"))
"""


def _run(code: str, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), **env},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_app_without_application_insights_loads_no_telemetry_package() -> None:
    loaded = _run(
        "import sys, function_app\n" + _EXERCISE_EVERY_RECORDER + "\nimport json\n"
        "print(json.dumps({'on': on, 'enabled': telemetry.enabled(), 'modules': sorted(m for m in sys.modules "
        "if m.split('.')[0] == 'opentelemetry' or m.startswith('azure.monitor'))}))"
    )
    assert loaded == {"on": False, "enabled": False, "modules": []}


def test_a_connection_string_switches_on_the_azure_monitor_distro_without_automatic_sdk_spans() -> None:
    # An ingestion endpoint nobody listens on: configuring must neither fail nor wait for it.
    connection_string = (
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=https://127.0.0.1:9/;LiveEndpoint=https://127.0.0.1:9/"
    )
    state = _run(
        _EXERCISE_EVERY_RECORDER + "\nimport json\nfrom opentelemetry import metrics, trace\n"
        "from azure.core.settings import settings\n"
        "print(json.dumps({'on': on, 'meter': type(metrics.get_meter_provider()).__module__, "
        "'tracer': type(trace.get_tracer_provider()).__module__, "
        "'azure_sdk_spans': settings.tracing_implementation() is not None}))",
        APPLICATIONINSIGHTS_CONNECTION_STRING=connection_string,
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
    )
    assert state == {
        "on": True,
        "meter": "opentelemetry.sdk.metrics._internal",
        "tracer": "opentelemetry.sdk.trace",
        "azure_sdk_spans": False,
    }


def test_providers_the_worker_already_configured_are_used_as_they_are_without_azure_sdk_spans() -> None:
    # As a Python worker that configured the distro itself leaves the process (default options:
    # Azure SDK spans on). A second configure_azure_monitor would export every log line twice.
    state = _run(
        "from opentelemetry import metrics, trace\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from azure.core.settings import settings\n"
        "from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan\n"
        "import azure.monitor.opentelemetry as distro\n"
        "trace.set_tracer_provider(TracerProvider()); metrics.set_meter_provider(MeterProvider())\n"
        "settings.tracing_implementation = OpenTelemetrySpan\n"
        "worker = (trace.get_tracer_provider(), metrics.get_meter_provider())\n"
        "def twice(**_): raise AssertionError('configured twice')\n"
        "distro.configure_azure_monitor = twice\n"
        + _EXERCISE_EVERY_RECORDER + "\nimport json\n"
        "print(json.dumps({'on': on, 'same': (trace.get_tracer_provider(), metrics.get_meter_provider()) == worker, "
        "'azure_sdk_spans': settings.tracing_implementation() is not None}))",
        APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=00000000-0000-0000-0000-000000000000",
    )
    assert state == {"on": True, "same": True, "azure_sdk_spans": False}


def test_an_empty_connection_string_leaves_telemetry_off() -> None:
    assert telemetry.configure({telemetry.CONNECTION_SETTING: "  "}) is False
    assert telemetry.enabled() is False


def test_no_exported_attribute_holds_a_token_or_a_raw_user_id(recorded: Recorded) -> None:
    app_user_id = f"github|{uuid.uuid4().hex}"
    token = "eyJhbGciOiJSUzI1NiJ9." + uuid.uuid4().hex + "." + uuid.uuid4().hex
    communication_user_id = f"8:acs:{uuid.uuid4()}_{uuid.uuid4()}"

    class Context:
        invocation_id = str(uuid.uuid4())
        function_name = "issue_token"
        trace_context = None

    # Every recorder, handed the secrets wherever a careless call could put them.
    with telemetry.invocation(Context(), function=app_user_id):
        telemetry.identify_user(app_user_id)
        for name in (app_user_id, token, communication_user_id):
            with telemetry.dependency("acs", name):
                pass
            telemetry.identity_deleted(name)
            telemetry.token_issued(name)
            telemetry.refused(name, name, name)
            telemetry.responded(403, Forbidden(name, code=name), name)
            error = DependencyUnavailable(name)
            setattr(error, "dependency", name)
            telemetry.responded(503, error, name)
        telemetry.responded(429, Throttled(token, retry_after=1))
        telemetry.responded(400, InvalidRequest(token))
    with telemetry.invocation(Context()):
        telemetry.identify_user(app_user_id)

    exported = [str(value) for value in recorded.exported_values()]
    assert exported, "nothing was exported"
    for secret in (app_user_id, token, communication_user_id, "eyJ", "github|", "8:acs:"):
        assert not [value for value in exported if secret in value], f"an exported attribute holds {secret[:8]}…"
    assert telemetry.user_ref(app_user_id) in exported  # the hashed reference is what names a user
