"""Each metric moves for the event that causes it, with the name, unit and attributes the README
lists. The service's telemetry records into the OpenTelemetry SDK's in-memory reader here; in
Azure the same instruments feed Application Insights."""

from __future__ import annotations

import re

from shared import telemetry
from shared.cleanup import SweepReport
from shared.errors import DependencyUnavailable, Forbidden, Throttled, Unauthenticated
from shared.telemetry.instruments import METRICS
from tests.conftest import ROOT

from .conftest import Recorded


def _readme_metrics() -> dict[str, str]:
    """name -> unit from README.md's "Observability" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Observability", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(acs_tokens\.[a-z_.]+)` \| `([^`]+)` \|", section, flags=re.M))


def _record_every_metric() -> None:
    telemetry.token_issued()
    telemetry.token_reused()
    telemetry.identity_created()
    telemetry.identity_deleted("user_request")
    telemetry.identity_repaired()
    with telemetry.dependency("acs", "issue_token"):
        pass
    with telemetry.dependency("tables", "get"):
        pass
    telemetry.dependency_answered("acs", 429)
    telemetry.responded(503, DependencyUnavailable("down"), "issue_token")
    telemetry.responded(429, Throttled("slow down", retry_after=3), "issue_token")
    telemetry.record_sweep(SweepReport(dry_run=False, found=1, deleted=1, seconds=0.5))


def test_every_instrument_is_exported_with_the_name_and_unit_the_readme_lists(recorded: Recorded) -> None:
    _record_every_metric()
    exported = recorded.units()
    assert exported == {name: unit for name, (_, unit, _) in METRICS.items()}
    assert _readme_metrics() == exported


def test_tokens_issued_at_acs_and_handed_out_again_are_counted_apart(recorded: Recorded) -> None:
    telemetry.token_issued()
    telemetry.token_issued()
    telemetry.token_issued("teams")
    telemetry.token_reused()
    assert recorded.value("acs_tokens.tokens.issued", kind="user") == 2
    assert recorded.value("acs_tokens.tokens.issued", kind="teams") == 1
    assert recorded.value("acs_tokens.tokens.reused") == 1


def test_identities_created_deleted_and_repaired_move_their_own_counters(recorded: Recorded) -> None:
    telemetry.identity_created()
    telemetry.identity_deleted("user_request")
    telemetry.identity_deleted("sweep")
    telemetry.identity_deleted("sweep")
    telemetry.identity_deleted("github|someone")  # not a reason: exported as "other", never as given
    telemetry.identity_repaired()
    assert recorded.value("acs_tokens.identities.created") == 1
    assert recorded.value("acs_tokens.identities.deleted", reason="user_request") == 1
    assert recorded.value("acs_tokens.identities.deleted", reason="sweep") == 2
    assert recorded.value("acs_tokens.identities.deleted", reason="other") == 1
    assert recorded.value("acs_tokens.identities.repaired") == 1
    assert "github|someone" not in recorded.exported_values()


def test_refusals_are_counted_by_rate_limit_access_policy_and_missing_caller(recorded: Recorded) -> None:
    telemetry.responded(429, Throttled("Too many token requests.", retry_after=5), "issue_token")
    telemetry.responded(403, Forbidden("Not allowed.", code="NotAdmin"), "mark_deleted_users")
    telemetry.responded(403, Forbidden("Deleted.", code="AccountDeleted"), "issue_token")
    telemetry.responded(401, Unauthenticated("Who are you?"), "get_identity")
    telemetry.responded(200, None, "issue_token")
    name = "acs_tokens.requests.refused"
    assert recorded.value(name, reason="rate_limit", code="TooManyRequests", function="issue_token") == 1
    assert recorded.value(name, reason="access_policy", code="NotAdmin", function="mark_deleted_users") == 1
    assert recorded.value(name, reason="access_policy", code="AccountDeleted") == 1
    assert recorded.value(name, reason="unauthenticated", code="Unauthenticated") == 1
    assert recorded.value(name) == 4


def test_a_503_is_counted_against_the_dependency_whose_call_failed(recorded: Recorded) -> None:
    from azure.core.exceptions import ServiceRequestError

    def failing_table_read() -> None:
        try:
            with telemetry.dependency("tables", "get"):
                raise ServiceRequestError("Cannot connect to host")  # what azure-core raises on a refused connection
        except ServiceRequestError:
            raise DependencyUnavailable("Table Storage could not be reached.") from None

    for _ in range(2):
        try:
            failing_table_read()
        except DependencyUnavailable as error:
            telemetry.responded(503, error, "get_identity")
    telemetry.responded(503, DependencyUnavailable("no idea"), "health")
    telemetry.responded(503, DependencyUnavailable("Out of time."), "issue_token", dependency="deadline")

    name = "acs_tokens.responses.unavailable"
    assert recorded.value(name, dependency="tables", function="get_identity") == 2
    assert recorded.value(name, dependency="unknown", function="health") == 1
    assert recorded.value(name, dependency="deadline", function="issue_token") == 1
    assert recorded.value("acs_tokens.table.call.duration", operation="get", outcome="unreachable") == 2


def test_the_sweep_report_becomes_counts_by_result_and_a_duration(recorded: Recorded) -> None:
    report = SweepReport(dry_run=False, found=7, deleted=4, already_gone=1, retained=0, failed=1, left=1, seconds=2.5,
                         guests_deleted=3, guests_left=1, kept_active=2, mismatched=1, unmapped_deleted=5,
                         unmapped_kept=6, uncertain=8, uncertain_pending=9)
    telemetry.record_sweep(report)
    name = "acs_tokens.sweep.items"
    assert {result: recorded.value(name, result=result) for result in telemetry.SWEEP_RESULTS} == {
        "found": 7, "deleted": 4, "already_gone": 1, "retained": 0, "failed": 1, "left": 1, "inactive": 0,
        "kept_active": 2, "mismatched": 1, "guests_deleted": 3, "guests_left": 1, "guests_failed": 0,
        "unmapped_deleted": 5, "unmapped_kept": 6, "uncertain": 8, "uncertain_pending": 9,
    }
    assert recorded.value("acs_tokens.sweep.duration", dry_run=False) == 1
    (_, point), = recorded.points()["acs_tokens.sweep.duration"]
    assert point.sum == 2.5


def test_every_count_of_the_sweep_summary_line_is_a_metric() -> None:
    """What the summary line names an operator finds in ``acs_tokens.sweep.items`` too."""
    line = SweepReport(dry_run=False).summary()
    named = [name for name in re.findall(r"(\w+)=", line) if name != "seconds"]
    assert sorted(named) == sorted(telemetry.SWEEP_RESULTS)
