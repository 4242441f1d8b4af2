"""`make dev`'s telemetry page: the function host runs under devstack/telemetry_view.py and the
page lists every metric of the README with its unit, and the spans and failure lines it holds."""

from __future__ import annotations

import requests

from shared.telemetry.instruments import METRICS

from .conftest import TelemetryHost


def test_the_local_view_lists_every_metric_with_its_unit_while_the_app_serves(telemetry_host: TelemetryHost) -> None:
    assert requests.get(f"{telemetry_host.functions}/api/health", timeout=30).status_code in (200, 503)
    metrics = telemetry_host.json("metrics.json")["metrics"]
    assert [(m["name"], m["unit"]) for m in metrics] == [(name, unit) for name, (_, unit, _) in METRICS.items()]
    page = requests.get(f"{telemetry_host.view}/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert all(name in page.text for name in METRICS)
    assert isinstance(telemetry_host.json("spans.json")["spans"], list)
    assert isinstance(telemetry_host.json("logs.json")["lines"], list)


def test_an_unknown_view_page_is_a_json_404(telemetry_host: TelemetryHost) -> None:
    response = requests.get(f"{telemetry_host.view}/nope", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"
