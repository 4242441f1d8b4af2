"""Fixtures for tests that run against the local stack that `make test` starts.

The stack is found through local.stack.json (written by devstack.stack). Callers are app users
signed in through Static Web Apps: each test makes its own users, so tests never share state.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def principal_header(user_id: str, provider: str = "github", roles: tuple[str, ...] = ("anonymous", "authenticated")) -> str:
    """The x-ms-client-principal header Static Web Apps sets for a signed-in user."""
    principal = {"identityProvider": provider, "userId": user_id, "userDetails": f"{user_id}@example.test",
                 "userRoles": list(roles)}
    return base64.b64encode(json.dumps(principal).encode()).decode()


@dataclass(frozen=True)
class User:
    user_id: str
    provider: str = "github"
    roles: tuple[str, ...] = ("anonymous", "authenticated")

    @property
    def app_user_id(self) -> str:
        return f"{self.provider}|{self.user_id}"

    @property
    def headers(self) -> dict[str, str]:
        return {"x-ms-client-principal": principal_header(self.user_id, self.provider, self.roles)}


def new_user(roles: tuple[str, ...] = ("anonymous", "authenticated")) -> User:
    return User(f"user-{uuid.uuid4().hex[:12]}", roles=roles)


@dataclass
class Api:
    """The function host's HTTP API as a signed-in user's browser (behind SWA) would call it."""

    base: str
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, user: User | None = None, headers: dict | None = None, **kwargs: Any) -> requests.Response:
        merged = {**(user.headers if user else {}), **(headers or {})}
        return self.session.request(method, f"{self.base}{path}", headers=merged, timeout=60, **kwargs)

    def token(self, user: User, body: dict | None = None, fresh: bool = False) -> requests.Response:
        headers = {"Cache-Control": "no-cache"} if fresh else {}
        return self.call("POST", "/api/token", user, headers=headers, json=body)


@dataclass
class Emulator:
    """The ACS Identity emulator's control surface (/_emulator/…)."""

    base: str
    ca: str

    def _req(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, f"{self.base}/_emulator/{path}", verify=self.ca, timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def identities(self) -> set[str]:
        return set(self._req("GET", "identities").json()["identities"])

    def verify(self, token: str) -> dict:
        return self._req("POST", "tokens:verify", json={"token": token}).json()

    def fault(self, status: int, count: int, operations: list[str] | None = None, retry_after: int | None = 1) -> None:
        body: dict[str, Any] = {"status": status, "count": count, "retryAfterSeconds": retry_after}
        if operations:
            body["operations"] = operations
        self._req("POST", "faults", json=body)

    def clear_faults(self) -> None:
        self._req("DELETE", "faults")

    def configure(self, **config: Any) -> None:
        self._req("PUT", "config", json=config)

    def stats(self) -> dict:
        return self._req("GET", "stats").json()


@pytest.fixture(scope="session")
def stack() -> dict:
    path = Path(os.environ.get("LOCAL_STACK_FILE", ROOT / "local.stack.json"))
    if not path.exists():
        pytest.fail("local.stack.json is missing: run the tests with `make test`, which starts the local stack")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def api(stack: dict) -> Api:
    return Api(stack["functionHost"])


@pytest.fixture(scope="session")
def emulator(stack: dict) -> Iterator[Emulator]:
    control = Emulator(stack["acsEndpoint"], stack["caCertFile"])
    yield control
    control.clear_faults()


@pytest.fixture
def user() -> User:
    return new_user()


@pytest.fixture(scope="session")
def table(stack: dict):
    """The mapping table, read directly (as an operator would) to check what the service stored."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(stack["tablesConnectionString"])
    return service.create_table_if_not_exists("acsidentities")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FunctionHost:
    """A second function host on its own port with other settings (e.g. connection strings)."""

    def __init__(self, stack: dict, overrides: dict[str, str], name: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **overrides}
        self.log = ROOT / ".devstack" / f"functions-{name}-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.funchost", "--app-dir", str(ROOT), "--host", "127.0.0.1",
             "--port", str(self.port), "--settings", stack["functionSettingsFile"]],
            cwd=ROOT, env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"function host exited; see {self.log}")
            try:
                requests.get(f"{self.base}/admin/host/status", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"function host did not start; see {self.log}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def connection_string_api(stack: dict) -> Iterator[Api]:
    """The function app configured with connection strings (the local-emulator configuration)."""
    host = FunctionHost(stack, {
        "ACS_ENDPOINT": "", "TABLES_ENDPOINT": "",
        "ACS_CONNECTION_STRING": stack["acsConnectionString"],
        "TABLES_CONNECTION_STRING": stack["tablesConnectionString"],
    }, "connection-strings")
    yield Api(host.base)
    host.stop()


@pytest.fixture(scope="session", params=["managed-identity", "connection-strings"])
def any_api(request: pytest.FixtureRequest, api: Api) -> Api:
    """Both tested configurations: managed identity (the default) and connection strings."""
    if request.param == "managed-identity":
        return api
    return request.getfixturevalue("connection_string_api")
