"""What an operator sees for what users do: each flow, sent over HTTP to a function host that runs
under `make dev`'s telemetry view (devstack/telemetry_view.py) against the local stack, moves the
figures it should and no others, and the view's /metrics.json, /spans.json and /logs.json show it.

The host records into the OpenTelemetry SDK's in-memory reader and a span exporter instead of
Application Insights (the one part no local stand-in exists for); the instruments, names and
attributes are the ones the deployed app exports. Figures are cumulative, so each test reads them
before and after its flow; only these tests call this host, one at a time."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import requests

from tests.conftest import CREATES, Api, Emulator, User, expect_error, new_user

from .conftest import TelemetryHost

ADMIN = ("anonymous", "authenticated", "admin")
_MS_CV = re.compile(r"[A-Za-z0-9+/]{22}\.\d+")  # ACS's correlation vector (the emulator sends the same shape)

#: Every token, app user id and ACS identity the flows handled: none may be exported.
HANDLED: set[str] = set()


# -- reading the view ------------------------------------------------------------------------


@dataclass
class Figures:
    """One reading of /metrics.json: metric name -> [(attributes, value or histogram count)]."""

    points: dict[str, list[tuple[dict[str, Any], float]]] = field(default_factory=dict)

    def __call__(self, name: str, **attributes: Any) -> float:
        """A counter's total, or a histogram's count, over the points carrying these attributes."""
        return sum(value for found, value in self.points.get(name, []) if all(found.get(k) == v for k, v in attributes.items()))


def figures(host: TelemetryHost) -> Figures:
    reading = Figures()
    for metric in host.json("metrics.json")["metrics"]:
        reading.points[metric["name"]] = [
            (point["attributes"], point["count"] if "count" in point else point["value"]) for point in metric["points"]
        ]
    return reading


#: The figures a user's flow can move; every test checks all of them, so a figure that moves when
#: it should not is caught as surely as one that does not move.
WATCHED: dict[str, dict[str, Any]] = {
    "issued": {"name": "acs_tokens.tokens.issued", "kind": "user"},
    "reused": {"name": "acs_tokens.tokens.reused"},
    "created": {"name": "acs_tokens.identities.created"},
    "deleted": {"name": "acs_tokens.identities.deleted"},
    "repaired": {"name": "acs_tokens.identities.repaired"},
    "refused": {"name": "acs_tokens.requests.refused"},
    "unavailable": {"name": "acs_tokens.responses.unavailable"},
    "sweep_found": {"name": "acs_tokens.sweep.items", "result": "found"},
}


def moved(before: Figures, after: Figures) -> dict[str, float]:
    """How far each watched figure moved (only those that did)."""
    changes = {}
    for label, query in WATCHED.items():
        query = dict(query)
        name = query.pop("name")
        delta = after(name, **query) - before(name, **query)
        if delta:
            changes[label] = delta
    return changes


def traceparent() -> tuple[str, str]:
    """A W3C traceparent for one request, and its trace id (how a span is found again)."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


def spans_of(host: TelemetryHost, trace_id: str) -> list[dict[str, Any]]:
    return [span for span in host.json("spans.json")["spans"] if span["traceId"] == trace_id]


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 90) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# -- the flows ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host_api(telemetry_host: TelemetryHost) -> Api:
    return Api(telemetry_host.functions, log=telemetry_host.log)


def token(api: Api, user: User, fresh: bool = False, trace: str | None = None) -> requests.Response:
    headers = {"Cache-Control": "no-cache"} if fresh else {}
    if trace:
        headers["traceparent"] = trace
    response = api.call("POST", "/api/token", user, headers=headers)
    HANDLED.add(user.app_user_id)
    if response.status_code == 200:
        HANDLED.update((response.json()["token"], response.json()["communicationUserId"]))
    return response


def delete_at_acs(stack: dict, communication_user_id: str) -> None:
    """Delete an identity behind the service's back, as someone in the portal would."""
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

    CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"]).delete_user(
        CommunicationUserIdentifier(communication_user_id)
    )


def test_a_first_token_creates_an_identity_and_issues_one_token(telemetry_host: TelemetryHost, host_api: Api, emulator: Emulator) -> None:
    before, calls = figures(telemetry_host), emulator.calls(*CREATES, "issueAccessToken")
    assert token(host_api, new_user()).status_code == 200
    assert moved(before, figures(telemetry_host)) == {"created": 1, "issued": 1}
    assert emulator.calls(*CREATES, "issueAccessToken") - calls == 1  # the one token ACS really issued


def test_a_repeated_token_is_counted_as_handed_out_again_not_issued(
    telemetry_host: TelemetryHost, host_api: Api, emulator: Emulator
) -> None:
    user = new_user()
    first = token(host_api, user).json()
    before, calls = figures(telemetry_host), emulator.calls(*CREATES, "issueAccessToken")
    again = token(host_api, user)
    assert again.status_code == 200 and again.json()["token"] == first["token"]
    assert moved(before, figures(telemetry_host)) == {"reused": 1}
    assert emulator.calls(*CREATES, "issueAccessToken") == calls  # ACS was not asked


def test_a_no_cache_request_is_counted_as_a_token_issued_at_acs(
    telemetry_host: TelemetryHost, host_api: Api, emulator: Emulator, identical_tokens: bool
) -> None:
    user = new_user()
    first = token(host_api, user).json()
    before, calls = figures(telemetry_host), emulator.calls("issueAccessToken")
    fresh = token(host_api, user, fresh=True)
    assert fresh.status_code == 200
    if not identical_tokens:
        assert fresh.json()["token"] != first["token"]
    assert moved(before, figures(telemetry_host)) == {"issued": 1}
    assert emulator.calls("issueAccessToken") - calls == 1


def test_deleting_ones_identity_counts_a_deletion_at_the_users_request(
    telemetry_host: TelemetryHost, host_api: Api, emulator: Emulator
) -> None:
    user = new_user()
    identity = token(host_api, user).json()["communicationUserId"]
    before = figures(telemetry_host)
    assert host_api.call("DELETE", "/api/identity", user).status_code == 204
    after = figures(telemetry_host)
    assert identity not in emulator.identities()
    assert moved(before, after) == {"deleted": 1}
    assert after("acs_tokens.identities.deleted", reason="user_request") - before(
        "acs_tokens.identities.deleted", reason="user_request"
    ) == 1


def test_an_identity_deleted_at_acs_is_counted_as_repaired_by_the_next_token(
    telemetry_host: TelemetryHost, host_api: Api, emulator: Emulator, stack: dict
) -> None:
    user = new_user()
    old = token(host_api, user).json()["communicationUserId"]
    delete_at_acs(stack, old)
    before = figures(telemetry_host)
    repaired = token(host_api, user, fresh=True)
    assert repaired.status_code == 200 and repaired.json()["communicationUserId"] != old
    assert repaired.json()["communicationUserId"] in emulator.identities()
    # The repair is a new identity with its first token, pointed at by the old mapping.
    assert moved(before, figures(telemetry_host)) == {"repaired": 1, "created": 1, "issued": 1}


def test_a_user_over_the_token_limit_is_counted_as_refused_by_the_rate_limit(
    telemetry_host: TelemetryHost, host_api: Api
) -> None:
    user = new_user()
    assert token(host_api, user).status_code == 200
    before = figures(telemetry_host)
    answers = [token(host_api, user).status_code for _ in range(TelemetryHost.TOKEN_REQUESTS_PER_MINUTE)]
    assert answers[-1] == 429 and answers.count(429) == 1, answers  # a bucket of 5: the first, 4 more, then the limit
    after = figures(telemetry_host)
    assert moved(before, after) == {"reused": 4, "refused": 1}
    assert after("acs_tokens.requests.refused", reason="rate_limit", code="TooManyRequests", function="issue_token") - before(
        "acs_tokens.requests.refused", reason="rate_limit", code="TooManyRequests", function="issue_token"
    ) == 1


def test_a_caller_the_access_policy_refuses_is_counted_as_refused_by_it(
    telemetry_host: TelemetryHost, host_api: Api
) -> None:
    before = figures(telemetry_host)
    expect_error(host_api.call("POST", "/api/manage/deleted-users", new_user(), json={"appUserIds": ["github|x"]}), 403, "NotAdmin")
    after = figures(telemetry_host)
    assert moved(before, after) == {"refused": 1}
    query = {"reason": "access_policy", "code": "NotAdmin", "function": "mark_deleted_users"}
    assert after("acs_tokens.requests.refused", **query) - before("acs_tokens.requests.refused", **query) == 1


@pytest.fixture
def acs_down(emulator: Emulator):
    """ACS answering 503 to every create and issue until the test ends."""
    emulator.fault(503, 50, [*CREATES, "issueAccessToken"], retry_after=1)
    try:
        yield emulator
    finally:
        emulator.clear_faults()


def test_acs_answering_503_is_counted_against_acs_with_its_ms_cv_on_the_failure_line(
    telemetry_host: TelemetryHost, host_api: Api, acs_down: Emulator
) -> None:
    before = figures(telemetry_host)
    trace, trace_id = traceparent()
    expect_error(token(host_api, new_user(), trace=trace), 503, "ServiceUnavailable")
    after = figures(telemetry_host)
    assert moved(before, after) == {"unavailable": 1}
    query = {"dependency": "acs", "function": "issue_token"}
    assert after("acs_tokens.responses.unavailable", **query) - before("acs_tokens.responses.unavailable", **query) == 1
    # The create is never retried (ACS has no idempotent create): one call, one answer, 503.
    create = {"operation": "create_user_and_token", "outcome": "server_error", "status_code": 503}
    assert after("acs_tokens.acs.call.duration", **create) - before("acs_tokens.acs.call.duration", **create) == 1
    answered = {"dependency": "acs", "status_code": 503}
    assert after("acs_tokens.dependency.responses", **answered) - before("acs_tokens.dependency.responses", **answered) == 1

    (invocation,) = [span for span in spans_of(telemetry_host, trace_id) if span["kind"] == "SERVER"]
    (call,) = [span for span in spans_of(telemetry_host, trace_id) if span["name"] == "acs create_user_and_token"]
    assert invocation["status"] == "ERROR" and invocation["attributes"]["http.response.status_code"] == 503
    assert call["status"] == "ERROR" and _MS_CV.fullmatch(call["attributes"]["acs.ms_cv"])
    # The failure line names the invocation and carries the MS-CV ACS answered with.
    lines = [line for line in telemetry_host.json("logs.json")["lines"]
             if line["invocation_id"] == invocation["attributes"]["faas.invocation_id"]]
    failure = [line for line in lines if "acs create_user_and_token failed: 503" in line["message"]]
    assert len(failure) == 1 and failure[0]["ms_cv"] == call["attributes"]["acs.ms_cv"], lines


def test_a_sweep_counts_what_it_found_and_deleted(telemetry_host: TelemetryHost, host_api: Api, emulator: Emulator) -> None:
    users = [new_user() for _ in range(2)]
    identities = [token(host_api, user).json()["communicationUserId"] for user in users]
    admin = new_user(ADMIN)
    HANDLED.add(admin.app_user_id)
    marked = host_api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": [u.app_user_id for u in users]})
    assert marked.status_code == 202, marked.text
    refused = figures(telemetry_host)
    expect_error(token(host_api, users[0], fresh=True), 403, "AccountDeleted")  # the policy refuses a deleted account
    before = figures(telemetry_host)
    query = {"reason": "access_policy", "code": "AccountDeleted", "function": "issue_token"}
    assert before("acs_tokens.requests.refused", **query) - refused("acs_tokens.requests.refused", **query) == 1

    started = requests.post(f"{telemetry_host.functions}/admin/functions/cleanup_deleted_users", json={"input": ""}, timeout=30)
    assert started.status_code == 202
    after = wait_for(
        lambda: (reading := figures(telemetry_host))("acs_tokens.sweep.duration") > before("acs_tokens.sweep.duration") and reading,
        "the sweep's figures",
    )
    assert not set(identities) & emulator.identities()
    items = {result: after("acs_tokens.sweep.items", result=result, dry_run=False)
             - before("acs_tokens.sweep.items", result=result, dry_run=False)
             for result in ("found", "deleted", "already_gone", "failed", "left")}
    assert items == {"found": 2, "deleted": 2, "already_gone": 0, "failed": 0, "left": 0}
    assert after("acs_tokens.identities.deleted", reason="sweep") - before("acs_tokens.identities.deleted", reason="sweep") == 2
    assert moved(before, after) == {"sweep_found": 2, "deleted": 2}


def test_each_request_is_one_server_span_with_its_acs_and_table_calls_as_children(
    telemetry_host: TelemetryHost, host_api: Api
) -> None:
    user = new_user()
    traces = []
    for send in (lambda t: token(host_api, user, trace=t),                 # create: ACS and the table
                 lambda t: token(host_api, user, fresh=True, trace=t),     # issue at ACS
                 lambda t: host_api.call("DELETE", "/api/identity", user, headers={"traceparent": t})):
        trace, trace_id = traceparent()
        assert send(trace).status_code in (200, 204)
        traces.append((trace, trace_id))

    for (trace, trace_id), function in zip(traces, ("issue_token", "issue_token", "delete_identity")):
        spans = spans_of(telemetry_host, trace_id)
        (server,) = [span for span in spans if span["kind"] == "SERVER"]
        assert server["name"] == function and server["parentId"] == trace.split("-")[2]  # continues the caller's trace
        assert re.fullmatch(r"[0-9a-f-]{36}", server["attributes"]["faas.invocation_id"])
        calls = [span for span in spans if span["kind"] == "CLIENT"]
        assert calls and len(calls) == len(spans) - 1
        assert all(span["parentId"] == server["spanId"] for span in calls), calls
        # A new user's mapping is not there yet (a 404 from the table): an answer, not a failure.
        assert all(span["attributes"]["outcome"] in ("success", "not_found") and span["status"] == "UNSET" for span in calls), calls
    names = [{span["name"] for span in spans_of(telemetry_host, trace_id) if span["kind"] == "CLIENT"} for _, trace_id in traces]
    assert {"tables get", "acs create_user_and_token", "tables insert"} <= names[0], names[0]  # a new user: look up, create, map
    assert "acs issue_token" in names[1], names[1]  # a known user: straight to ACS
    assert {"tables get", "acs delete_user"} <= names[2], names[2]


def test_nothing_the_flows_exported_holds_a_token_or_a_raw_user_id(
    telemetry_host: TelemetryHost, host_api: Api, emulator: Emulator, stack: dict
) -> None:
    if not HANDLED:  # run on its own: go through the flows first
        user = new_user()
        identity = token(host_api, user).json()["communicationUserId"]
        token(host_api, user)
        delete_at_acs(stack, identity)
        token(host_api, user, fresh=True)
        host_api.call("DELETE", "/api/identity", user)
    exported: list[str] = []
    for metric in telemetry_host.json("metrics.json")["metrics"]:
        exported.extend(str(value) for point in metric["points"] for value in point["attributes"].values())
    for span in telemetry_host.json("spans.json")["spans"]:
        exported.append(span["name"])
        exported.extend(str(value) for value in span["attributes"].values())
    exported.extend(line["message"] for line in telemetry_host.json("logs.json")["lines"])
    assert HANDLED and exported
    leaks = {secret[:12] for secret in HANDLED for value in exported if secret in value}
    assert not leaks, f"exported values hold {sorted(leaks)}"
    assert not [value for value in exported if "eyJ" in value or "8:acs:" in value or "github|" in value]
    # Users are named by their hashed reference, the one the log lines use.
    from shared.telemetry import user_ref

    refs = {span["attributes"].get("app.user_ref") for span in telemetry_host.json("spans.json")["spans"]}
    assert refs & {user_ref(secret) for secret in HANDLED if "|" in secret}
