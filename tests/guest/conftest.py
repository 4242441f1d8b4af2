"""Function hosts for the Teams meeting guest tests, each started beside the stack's own host on
the same Azurite and ACS emulator, with the guest settings the test needs. Every test speaks as
clients of its own (a fresh X-Forwarded-For address, as Static Web Apps forwards it), so budgets
never carry over between tests."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
import requests

from tests.conftest import Api, FunctionHost, record_secrets
from tests.service.test_mapping_write_failure import InsertFailingProxy

GUEST_PATH = "/api/guest/token"

#: Guest identities the tests of the running module made: swept when the module ends, so no
#: other test's sweep (their counts at ACS) ever meets one, however long the run lasts.
MADE: set[str] = set()


def remember(response: requests.Response) -> requests.Response:
    """Note the guest identity a 200 answer made, for the end-of-module sweep."""
    if response.status_code == 200:
        identity = response.json().get("communicationUserId")
        if isinstance(identity, str):
            MADE.add(identity)
    return response


def new_client() -> str:
    """A client address nobody else uses in this run (TEST-NET and documentation ranges are not
    needed: the host only reads the header)."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def ask(api: Api, display_name: object = "Ada Lovelace", client: str | None = None, headers: dict | None = None,
        **kwargs) -> requests.Response:
    """POST /api/guest/token as a browser behind Static Web Apps would reach it."""
    sent = {"X-Forwarded-For": f"{client or new_client()}:{random.randrange(1024, 65535)}", **(headers or {})}
    if "json" not in kwargs and "data" not in kwargs:
        kwargs["json"] = {"displayName": display_name}
    response = api.session.post(f"{api.base}{GUEST_PATH}", headers=sent, timeout=60, **kwargs)
    record_secrets(sent, response)
    return remember(response)


class GuestHost:
    def __init__(self, host: FunctionHost) -> None:
        self.host = host
        self.api = Api(host.base, log=host.log)

    def sweep(self) -> str:
        """Run the sweep on this host now and return its summary line."""
        from tests.lifecycle.conftest import run_cleanup, summary_after

        lines = len(self.host.log_text().splitlines())
        run_cleanup(self.host.base)
        return summary_after(self.host, lines)


@pytest.fixture(scope="session")
def guests(stack: dict) -> Iterator[GuestHost]:
    """Guests on, budgets of the default per client (5 a minute) and a generous total, so the
    functional tests are not throttled by each other."""
    host = FunctionHost(stack, {"GUEST_ACCESS_ENABLED": "true", "GUEST_REQUESTS_PER_MINUTE": "1000"}, "guests")
    yield GuestHost(host)
    host.stop()


def guest_rows(table) -> dict[str, datetime]:
    """The guests partition as an operator would read it: identity -> ExpiresAt."""
    return {e["RowKey"]: e["ExpiresAt"] for e in table.query_entities("PartitionKey eq 'guests'")}


def age_guests(table, identities: set[str], by: timedelta = timedelta(hours=2)) -> None:
    """Move these guests' recorded expiry back, as if ``by`` had passed since their tokens
    expired. The sweep takes its clock from the row (ExpiresAt), so this is the passage of time
    it sees; waiting the real 60 minutes of a guest token is not what a test can do. The tokens
    themselves (signed by the emulator) are untouched."""
    for identity in identities:
        table.update_entity(
            {"PartitionKey": "guests", "RowKey": identity, "ExpiresAt": datetime.now(timezone.utc) - by}, mode="merge"
        )


@pytest.fixture(scope="session")
def failing_record(stack: dict) -> Iterator[tuple[Api, InsertFailingProxy]]:
    """A guest host whose table inserts fail (an HTTPS proxy in front of the real Azurite; see
    tests/service/test_mapping_write_failure.py): the one fault Azurite cannot inject."""
    proxy = InsertFailingProxy(stack["tablesEndpoint"], stack["caCertFile"])
    host = FunctionHost(stack, {"GUEST_ACCESS_ENABLED": "true",
                                "TABLES_ENDPOINT": proxy.endpoint}, "guests-failing-record")
    yield Api(host.base, log=host.log), proxy
    host.stop()
    proxy.stop()


def sweep_the_guests_made(request: pytest.FixtureRequest, host: str) -> None:
    """Age and sweep, through the guest host fixture named ``host``, the guests made since the
    last call (see MADE), so no later sweep of the run meets one. The set is read through the
    import name the test modules use: pytest loads this file under another name."""
    from tests.guest.conftest import MADE as made

    if not made:
        return
    table = request.getfixturevalue("table")
    left = made & set(guest_rows(table))
    if left:
        age_guests(table, left)
        request.getfixturevalue(host).sweep()
    made.clear()


@pytest.fixture(scope="module", autouse=True)
def sweep_the_guests_made_here(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each module: the guests it made are aged and swept."""
    yield
    sweep_the_guests_made(request, "guests")
