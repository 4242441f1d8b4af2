"""openapi.yaml's POST /guest/token is what the running endpoint answers: each documented status
produced here, its body and headers checked against the description (the check of
tests/service/test_openapi.py, which also counts these answers in its final "every documented
status was answered" test)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import Api, FunctionHost
from tests.guest.conftest import GuestHost, ask, new_client

OPENAPI_TESTS = Path(__file__).resolve().parents[1] / "service" / "test_openapi.py"


def _check() -> Callable:
    """test_openapi.py's check, from the very module pytest collected (whatever name it gave it),
    so that its final test counts these answers too; imported afresh when it is not in the run."""
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == OPENAPI_TESTS:
            return module.check
    from tests.service.test_openapi import check

    return check


@pytest.fixture(scope="module")
def off(stack: dict) -> Iterator[Api]:
    host = FunctionHost(stack, {"GUEST_ACCESS_ENABLED": ""}, "guests-openapi-off")
    yield Api(host.base)
    host.stop()


def test_guest_answers_match_the_description(guests: GuestHost, off: Api, failing_record):
    client = new_client()
    answers = [ask(guests.api, "Ada", client=client)]                                    # 200
    answers.append(ask(guests.api, "<b>Ada</b>", client=client))                          # 400
    answers.append(ask(off, "Ada"))                                                       # 404
    answers.append(ask(guests.api, client=client, data=b'{"displayName":"' + b"a" * 17_000 + b'"}',
                       headers={"Content-Type": "application/json"}))                     # 413
    answers += [ask(guests.api, "Ada", client=client) for _ in range(6)]                  # 429 once spent
    failing_api, _ = failing_record
    answers.append(ask(failing_api, "Ada"))                                               # 503
    assert {a.status_code for a in answers} == {200, 400, 404, 413, 429, 503}
    check = _check()
    for answer in answers:
        check(answer, "/guest/token", "post")
