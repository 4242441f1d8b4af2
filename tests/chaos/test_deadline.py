"""Every route answers by REQUEST_DEADLINE_SECONDS (+1 s for the host), with the contract's 503
and Retry-After, never a 500 or a hang, when ACS, Table Storage or both stop answering at all:
their connections stay open and swallow every request (a one-way partition), which is worse than
a refused connection because nothing ever fails on its own. Nothing is left at ACS unrecorded.

The host runs with a short budget (DEPENDENCY_TIMEOUT_SECONDS=1, REQUEST_DEADLINE_SECONDS=5) so
the test is quick; the chain of calls is the same as with the defaults."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.chaos.conftest import ADMIN, settle, unrecorded
from tests.conftest import Emulator, new_user
from tests.guest.conftest import ask
from tests.reliability.support import error_body

DEADLINE = 5.0


@pytest.mark.parametrize("silent", ["acs", "tables", "both"])
def test_every_route_answers_503_by_the_deadline_when_dependencies_swallow_every_request(
    silent: str, chaos_host, acs: Emulator, table
):
    chaos = chaos_host(f"deadline-{silent}", {"DEPENDENCY_TIMEOUT_SECONDS": "1", "REQUEST_DEADLINE_SECONDS": str(int(DEADLINE))},
                       acs=True, tables=True)
    api = chaos.api
    known = new_user()
    assert api.token(known).status_code == 200
    assert ask(api).status_code == 200
    before = acs.identities()
    if silent in ("acs", "both"):
        chaos.acs.drop_requests()
    if silent in ("tables", "both"):
        chaos.tables.drop_requests()

    #: What each route needs; a route whose dependencies all still answer may succeed.
    needs = {"first token": {"acs", "tables"}, "no-cache token": {"acs"}, "identity": {"tables"},
             "revoke": {"acs", "tables"}, "delete": {"acs", "tables"}, "guest token": {"acs", "tables"},
             "mark deleted": {"tables"}, "health": {"tables"}}
    silenced = {"acs", "tables"} if silent == "both" else {silent}
    calls = {
        "first token": lambda: api.token(new_user()),
        "no-cache token": lambda: api.token(known, fresh=True),
        "identity": lambda: api.call("GET", "/api/identity", known),
        "revoke": lambda: api.call("POST", "/api/token/revoke", known),
        "delete": lambda: api.call("DELETE", "/api/identity", known),
        "guest token": lambda: ask(api),
        "mark deleted": lambda: api.call("POST", "/api/manage/deleted-users", new_user(ADMIN),
                                         json={"appUserIds": [new_user().app_user_id]}),
        "health": lambda: api.call("GET", "/api/health"),
    }

    def timed(call) -> tuple[requests.Response, float]:
        started = time.monotonic()
        response = call()
        return response, time.monotonic() - started

    with ThreadPoolExecutor(len(calls)) as pool:
        answers = dict(zip(calls, pool.map(timed, calls.values())))
    chaos.acs.cut()
    chaos.tables.cut()

    for name, (response, seconds) in answers.items():
        assert seconds <= DEADLINE + 1, f"{name} answered after {seconds:.1f} s (deadline {DEADLINE:g} s)"
        if not needs[name] & silenced:
            assert response.status_code < 300, f"{name}: {response.status_code} {response.text[:200]}"
            continue
        assert response.status_code == 503, f"{name}: {response.status_code} {response.text[:200]}"
        if name != "health":
            error_body(response)
        assert int(response.headers["Retry-After"]) >= 1, name
    assert settle(lambda: not ((acs.identities() - before) & unrecorded(acs, table)), 20), \
        "an identity made while a dependency was silent is recorded nowhere"
