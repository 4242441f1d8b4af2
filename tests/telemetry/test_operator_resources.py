"""The workbook and alert rules an operator gets (infra/app/observability.bicep) read the metrics
the app exports, under the names it exports them, and the README states their thresholds as the
Bicep sets them. (tests/infra checks the file against the type definitions and checkov.)"""

from __future__ import annotations

import re

from shared import telemetry
from shared.telemetry.instruments import METRICS
from tests.conftest import ROOT

BICEP = (ROOT / "infra" / "app" / "observability.bicep").read_text()


def _observability_section() -> str:
    return (ROOT / "README.md").read_text().split("## Observability", 1)[1].split("\n## ", 1)[0]


def _default(parameter: str) -> int:
    return int(re.search(rf"^param {parameter} int = (\d+)$", BICEP, flags=re.M).group(1))


def test_every_metric_the_app_exports_has_a_place_in_the_workbook() -> None:
    workbook = BICEP.split("var workbookItems", 1)[1]
    missing = [name for name in METRICS if name not in workbook and f'startswith "{name.rsplit(".", 1)[0]}."' not in workbook]
    assert missing == []


def test_the_workbook_and_alerts_name_only_metrics_the_app_exports() -> None:
    named = set(re.findall(r'"(acs_tokens\.[a-z_.]+)"', BICEP))
    assert named, "no metric is named"
    assert {name for name in named if not name.endswith(".")} <= set(METRICS)
    assert all(any(metric.startswith(name) for metric in METRICS) for name in named)


def test_the_sweep_alert_fires_on_every_kind_of_unfinished_work() -> None:
    (query,) = [q for q in re.findall(r"query: '([^\n]*)'", BICEP) if "acs_tokens.sweep.items" in q and "unfinished" in q]
    results = set(re.search(r"result\) in \(([^)]*)\)", query).group(1).replace('"', "").replace(" ", "").split(","))
    unfinished = {result for result in telemetry.SWEEP_RESULTS if result.endswith(("failed", "left"))}
    assert results == unfinished == {"failed", "left", "guests_failed", "guests_left"}


def test_the_readme_gives_the_alert_thresholds_the_bicep_sets() -> None:
    section = " ".join(_observability_section().split())
    assert f"more than {_default('unavailablePercent')} % of API requests answered 503 in 15 minutes" in section
    assert f"at least {_default('unavailableMinimumRequests')} requests" in section
    assert f"more than {_default('acsThrottledCalls')} answers 429 in 15 minutes" in section
