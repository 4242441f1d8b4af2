"""Fixtures of the attack tests: a caller who is not who they should be, against the local stack.

Extra function hosts with the settings an attack needs, the stack's OIDC issuer, and an OIDC
issuer of the tests' own (the dev stack's issuer code, run in this process) for tokens whose
claims the stack's issuer cannot be asked to mint, such as an ``exp`` that is a string. Every test
removes what it wrote to the shared table (a tombstone, a guest row), so no other test's sweep
meets it."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import jwt
import pytest

from tests.conftest import Api, FunctionHost
from tests.trust.conftest import Issuer

TOMBSTONES = "tombstones"


@pytest.fixture(scope="session")
def start_host(stack: dict) -> Iterator[Callable[[dict[str, str], str], Api]]:
    """Start a function host with some settings overridden; all are stopped when the session ends."""
    hosts: list[FunctionHost] = []

    def start(overrides: dict[str, str], name: str) -> Api:
        host = FunctionHost(stack, overrides, f"attacks-{name}")
        hosts.append(host)
        return Api(host.base, log=host.log)

    yield start
    for host in hosts:
        host.stop()


@pytest.fixture(scope="session")
def issuer(stack: dict) -> Issuer:
    return Issuer(stack)


@dataclass
class OwnIssuer:
    """devstack.oidc_issuer serving on a free port in a thread of this process: the same
    discovery, JWKS and keys as the stack's issuer, but the test signs any payload it likes."""

    url: str
    local: Any  # devstack.oidc_issuer.LocalIssuer
    audience: str = "api://acs-token-service-attacks"

    def sign(self, sub: str | None = None, **claims: Any) -> str:
        """An RFC 9068-shaped access token (typ at+jwt, client_id) with ``claims`` over the
        defaults; a claim given as None is left out."""
        now = int(time.time())
        payload = {"iss": self.url, "sub": sub or f"sub-{uuid.uuid4().hex[:12]}", "aud": self.audience,
                   "client_id": "attacks-client", "iat": now, "exp": now + 3600, **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, self.local.private_key, algorithm="RS256", headers={"kid": self.local.kid, "typ": "at+jwt"})

    def headers(self, sub: str | None = None, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sign(sub, **claims)}"}


@pytest.fixture(scope="session")
def own_issuer() -> Iterator[OwnIssuer]:
    from devstack import oidc_issuer

    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        started["running"] = loop.run_until_complete(oidc_issuer.start("127.0.0.1", 0))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="attacks-oidc-issuer", daemon=True)
    thread.start()
    assert ready.wait(30), "the tests' own OIDC issuer did not start"
    running = started["running"]
    yield OwnIssuer(running.url, running.issuer)
    asyncio.run_coroutine_threadsafe(running.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def remove_tombstone(table, app_user_id: str) -> None:
    """Delete a tombstone an attack may have written, so no later sweep in this run finds it."""
    from shared.identity_store import table_key

    table.delete_entity(TOMBSTONES, table_key(app_user_id))
