"""ACS calls are timed by operation and outcome (429s included), each is a span of the
invocation's trace, and a failed call's MS-CV and the invocation id reach the failure log line."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from aiohttp import web
from azure.core import AsyncPipelineClient
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from opentelemetry.trace import SpanKind, StatusCode

from shared import telemetry
from shared.errors import DependencyUnavailable
from tests.conftest import Emulator, free_port

from .conftest import Recorded


class Invocation:
    """The fields of the worker's func.Context that telemetry reads."""

    def __init__(self, function_name: str) -> None:
        self.invocation_id = str(uuid.uuid4())
        self.function_name = function_name
        self.trace_context = None


async def test_acs_calls_are_timed_by_operation_and_outcome_with_429s_as_throttled(
    recorded: Recorded, stack: dict, emulator: Emulator
) -> None:
    from azure.communication.identity import CommunicationUserIdentifier
    from azure.communication.identity.aio import CommunicationIdentityClient

    client = CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"], retry_total=0)
    async with client:
        with telemetry.invocation(Invocation("issue_token")):
            with telemetry.dependency("acs", "create_user"):
                user = await client.create_user()
            emulator.fault(429, 1, ["issueAccessToken"], retry_after=1)
            with pytest.raises(HttpResponseError):
                with telemetry.dependency("acs", "issue_token"):
                    await client.get_token(user, ["chat"])
            gone = CommunicationUserIdentifier(f"8:acs:{stack['acsResourceId']}_{uuid.uuid4()}")
            with pytest.raises(HttpResponseError):
                with telemetry.dependency("acs", "issue_token"):
                    await client.get_token(gone, ["chat"])
            with telemetry.dependency("acs", "delete_user"):
                await client.delete_user(user)

    name = "acs_tokens.acs.call.duration"
    assert recorded.value(name, operation="create_user", outcome="success") == 1
    assert recorded.value(name, operation="issue_token", outcome="throttled", status_code=429) == 1
    assert recorded.value(name, operation="issue_token", outcome="not_found", status_code=404) == 1
    assert recorded.value(name, operation="delete_user", outcome="success") == 1

    spans = {span.name: span for span in recorded.spans() if span.kind is SpanKind.SERVER}
    (invocation,) = spans.values()
    calls = [span for span in recorded.spans() if span.kind is SpanKind.CLIENT]
    assert [span.name for span in calls] == ["acs create_user", "acs issue_token", "acs issue_token", "acs delete_user"]
    assert all(span.parent is not None and span.parent.span_id == invocation.context.span_id for span in calls)
    assert all(span.context.trace_id == invocation.context.trace_id for span in calls)
    # A 429 is a failed call; a 404 is how the service learns an identity is gone, not a failure.
    assert [span.status.status_code for span in calls] == [StatusCode.UNSET, StatusCode.ERROR, StatusCode.UNSET, StatusCode.UNSET]


def test_an_invocation_the_worker_put_in_the_hosts_trace_is_a_child_of_the_hosts_request(recorded: Recorded) -> None:
    """In Azure the worker makes the host's request span current before the function runs
    (PYTHON_ENABLE_OPENTELEMETRY); here a remote span context attached the same way stands in."""
    from opentelemetry import context, trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    host_trace, host_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    attached = context.attach(TraceContextTextMapPropagator().extract({"traceparent": f"00-{host_trace}-{host_span}-01"}))
    try:
        with telemetry.invocation(Invocation("issue_token")):
            with telemetry.dependency("acs", "issue_token"):
                pass
    finally:
        context.detach(attached)
    call, invocation = recorded.spans()
    assert invocation.kind is SpanKind.INTERNAL and invocation.name == "issue_token"
    assert format(invocation.parent.span_id, "016x") == host_span and format(invocation.context.trace_id, "032x") == host_trace
    assert call.parent.span_id == invocation.context.span_id
    assert trace.get_current_span().get_span_context().is_valid is False  # nothing leaks into later work


async def _acs_answering_429(request: web.Request) -> web.Response:
    """Stands in for ACS's throttling answer with its MS-CV header (recorded from real ACS in
    shared/acs-recordings; the tests cannot make real ACS throttle on cue)."""
    return web.json_response(
        {"error": {"code": "TooManyRequests", "message": "Rate limit exceeded."}},
        status=429, headers={"MS-CV": "ZhpTp5f0b0OSnzMmWmNPpw.0", "Retry-After": "2"},
    )


async def test_failure_log_lines_carry_the_invocation_id_and_the_ms_cv_of_the_failed_acs_call(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    app = web.Application()
    app.router.add_post("/identities/{id}/:issueAccessToken", _acs_answering_429)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    log = logging.getLogger("shared.acs_identity")
    invocation = Invocation("issue_token")
    try:
        async with AsyncPipelineClient(base_url=f"http://127.0.0.1:{port}") as client:
            with caplog.at_level(logging.INFO, logger="shared"):
                with telemetry.invocation(invocation):
                    log.info("before any ACS failure")
                    url = f"http://127.0.0.1:{port}/identities/8:acs:x_y/:issueAccessToken"
                    try:
                        try:  # the shape of shared/acs_identity.py's _call
                            with telemetry.dependency("acs", "issue_token"):
                                response = await client.send_request(HttpRequest("POST", url))
                                raise HttpResponseError(response=response)  # as the SDK does with a non-2xx answer
                        except HttpResponseError:
                            log.warning("acs issue_token failed: 429 TooManyRequests")
                            raise DependencyUnavailable("Azure Communication Services is unavailable.") from None
                    except DependencyUnavailable as error:
                        telemetry.responded(503, error)
                log.warning("outside any invocation")
    finally:
        await runner.cleanup()

    before, failure, outside = (r for r in caplog.records if r.name == "shared.acs_identity")
    assert before.invocation_id == invocation.invocation_id and not hasattr(before, "ms_cv")
    assert failure.invocation_id == invocation.invocation_id
    assert failure.ms_cv == "ZhpTp5f0b0OSnzMmWmNPpw.0"
    assert not hasattr(outside, "invocation_id")
    (call,) = [span for span in recorded.spans() if span.kind is SpanKind.CLIENT]
    assert call.attributes["acs.ms_cv"] == "ZhpTp5f0b0OSnzMmWmNPpw.0"
    assert call.attributes["outcome"] == "throttled"
    # The 503 is owed to ACS: the failed call tagged the exception the domain error was raised over.
    assert recorded.value("acs_tokens.responses.unavailable", dependency="acs", function="issue_token") == 1


async def test_each_concurrent_invocation_keeps_its_own_invocation_id_and_ms_cv(recorded: Recorded) -> None:
    seen: dict[str, Any] = {}

    async def one(name: str) -> None:
        invocation = Invocation(name)
        with telemetry.invocation(invocation):
            await asyncio.sleep(0.01)
            record = logging.getLogger("shared.test").makeRecord("shared.test", logging.WARNING, __file__, 1, "x", (), None)
            seen[name] = (invocation.invocation_id, record.invocation_id)

    await asyncio.gather(one("issue_token"), one("delete_identity"), one("get_identity"))
    assert all(expected == got for expected, got in seen.values())
    assert len({got for _, got in seen.values()}) == 3


async def test_a_429_that_azure_core_retried_away_is_still_counted_as_an_answer(
    recorded: Recorded, stack: dict, emulator: Emulator
) -> None:
    from azure.communication.identity.aio import CommunicationIdentityClient

    client = CommunicationIdentityClient.from_connection_string(
        stack["acsConnectionString"], retry_total=2, retry_backoff_factor=0.1,
        per_retry_policies=[telemetry.answer_counter("acs")],
    )
    async with client:
        emulator.fault(429, 1, ["createIdentity"], retry_after=1)
        with telemetry.dependency("acs", "create_user"):
            user = await client.create_user()  # the first attempt is throttled, the retry succeeds
        with telemetry.dependency("acs", "delete_user"):
            await client.delete_user(user)

    assert recorded.value("acs_tokens.acs.call.duration", operation="create_user", outcome="success") == 1
    assert recorded.value("acs_tokens.dependency.responses", dependency="acs", status_code=429) == 1
    assert recorded.value("acs_tokens.dependency.responses", dependency="acs", status_code=201) == 1
    assert recorded.value("acs_tokens.dependency.responses", dependency="acs", status_code=204) == 1
