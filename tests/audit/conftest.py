"""Hosts and helpers for tests that show README claims no other test shows: a function host
whose Table Storage traffic is counted and a guest host with room in its budgets."""

from __future__ import annotations

from typing import Iterator

import pytest
from aiohttp import web

from tests.conftest import Api, FunctionHost
from tests.guest.conftest import GuestHost
from tests.table_proxy import TableProxy


class CountingTableProxy(TableProxy):
    """Forwards every Table Storage request to Azurite unchanged and records it (method, path):
    how a test sees whether a request path read or wrote the table at all."""

    def __init__(self, upstream: str, ca_file: str) -> None:
        self.seen: list[tuple[str, str]] = []
        super().__init__(upstream, ca_file)

    async def answer(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path))
        return await self.forward(request)


@pytest.fixture(scope="module")
def counted_tables(stack: dict) -> Iterator[tuple[Api, CountingTableProxy]]:
    """A function host (managed identity, as deployed) whose every table request passes the proxy."""
    proxy = CountingTableProxy(stack["tablesEndpoint"], stack["caCertFile"])
    host = FunctionHost(stack, {"TABLES_ENDPOINT": proxy.endpoint}, "audit-counted-tables")
    yield Api(host.base, log=host.log), proxy
    host.stop()
    proxy.stop()


@pytest.fixture(scope="session")
def audit_guests(stack: dict) -> Iterator[GuestHost]:
    """Guests on, a generous total budget (the per-client default of 5 stays)."""
    host = FunctionHost(stack, {"GUEST_ACCESS_ENABLED": "true", "GUEST_REQUESTS_PER_MINUTE": "1000"}, "audit-guests")
    yield GuestHost(host)
    host.stop()


@pytest.fixture(scope="module", autouse=True)
def sweep_the_guests_made_here(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each module: the guest identities its tests made (tests/guest/conftest.py's MADE,
    which its ask() fills) are aged and swept by the audit's guest host."""
    from tests.guest.conftest import sweep_the_guests_made

    yield
    sweep_the_guests_made(request, "audit_guests")
