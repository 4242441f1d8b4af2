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
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

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


def expect_error(response: requests.Response, status: int, code: str) -> str:
    """Assert the contract's error answer: this status, JSON ``{"error": {"code", "message"}}``
    with exactly this code and a human sentence, ``Cache-Control: no-store``, Retry-After on 429
    and 503, WWW-Authenticate on 401. Returns the message."""
    assert response.status_code == status, f"expected {status} {code}, got {response.status_code}: {response.text[:300]}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    assert response.headers.get("Cache-Control") == "no-store", response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], dict) and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message.strip() and "Traceback" not in message and "eyJ" not in message, body
    if status in (429, 503):
        assert int(response.headers["Retry-After"]) >= 1, response.headers
    if status == 401:
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers
    return message


@dataclass
class Api:
    """The function host's HTTP API as a signed-in user's browser (behind SWA) would call it."""

    base: str
    session: requests.Session = field(default_factory=requests.Session)
    #: The log of the function host behind it, when a test started that host.
    log: Path | None = None

    def call(self, method: str, path: str, user: User | None = None, headers: dict | None = None, **kwargs: Any) -> requests.Response:
        merged = {**(user.headers if user else {}), **(headers or {})}
        response = self.session.request(method, f"{self.base}{path}", headers=merged, timeout=60, **kwargs)
        record_secrets(merged, response, kwargs.get("json"))
        return response

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

    def calls(self, *operations: str) -> int:
        """How many requests ACS received for these operations so far (all of them when none)."""
        counted = self.stats()["calls"]
        return sum(counted.get(op, 0) for op in operations) if operations else sum(counted.values())

    def under_way(self, *operations: str, session: requests.Session | None = None) -> list[dict]:
        """The calls of these operations (all when none) that have reached ACS and are not yet
        answered, oldest first, each with the identity its path names (None for a create)."""
        response = (session or requests).get(f"{self.base}/_emulator/calls/in-flight", verify=self.ca, timeout=30,
                                             params=[("operation", op) for op in operations])
        response.raise_for_status()
        return response.json()["inFlight"]

    def wait_until_under_way(self, *operations: str, identity: str | None = None, seconds: float = 30) -> None:
        """Return once a call of these operations (about ``identity``, when given) is at ACS, not
        yet answered: a point a test observes before it acts, instead of a time it guesses (ACS
        must be slow enough to see it, e.g. ``latencyMs``)."""
        deadline = time.monotonic() + seconds
        what = f"{' or '.join(operations) or 'call'}{f' of {identity}' if identity else ''}"
        with requests.Session() as session:  # one connection for the whole wait
            while not any(identity in (None, call["identity"]) for call in self.under_way(*operations, session=session)):
                assert time.monotonic() < deadline, f"no {what} reached ACS in {seconds} s"
                time.sleep(0.02)


#: The emulator's names for the create operation, with and without a first token.
CREATES = ("createIdentity", "createIdentityAndToken")


def _stack_file() -> Path:
    return Path(os.environ.get("LOCAL_STACK_FILE", ROOT / "local.stack.json"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "run_last: runs after every other test of the run (reads what they left)")


def pytest_sessionstart(session: pytest.Session) -> None:
    """The stack's own secrets join the list the log check looks for."""
    path = _stack_file()
    if not path.exists():
        return
    stack = json.loads(path.read_text())
    SECRETS.add(*(stack.get(k) for k in ("acsAccessKey", "acsConnectionString", "tablesConnectionString",
                                         "storageConnectionString", "identityHeader")))
    for part in stack.get("storageConnectionString", "").split(";"):
        if part.startswith("AccountKey="):
            SECRETS.add(part[len("AccountKey="):])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked run_last go after all others, whatever folder they are in."""
    items.sort(key=lambda item: item.get_closest_marker("run_last") is not None)


@pytest.fixture(scope="session")
def stack() -> dict:
    path = _stack_file()
    if not path.exists():
        pytest.fail("local.stack.json is missing: run the tests with `make test`, which starts the local stack")
    return json.loads(path.read_text())


@pytest.fixture
def own_table(stack: dict) -> Iterator[tuple[str, Any]]:
    """A table of the test's own in the stack's Azurite (name, sync client), so what the test
    counts there is only its own rows; deleted afterwards."""
    from azure.data.tables import TableServiceClient

    name = f"owntable{uuid.uuid4().hex[:10]}"
    service = TableServiceClient.from_connection_string(stack["tablesConnectionString"])
    table = service.create_table_if_not_exists(name)
    yield name, table
    service.delete_table(name)


@pytest.fixture(scope="session")
def api(stack: dict) -> Api:
    return Api(stack["functionHost"])


@pytest.fixture(scope="session")
def emulator(stack: dict) -> Iterator[Emulator]:
    control = Emulator(stack["acsEndpoint"], stack["caCertFile"])
    yield control
    control.clear_faults()


@pytest.fixture
def quiet_emulator(emulator: Emulator) -> Iterator[Emulator]:
    """The emulator, with no fault, latency or resource switch outliving the test that set it."""
    emulator.clear_faults()
    yield emulator
    emulator.clear_faults()
    emulator.configure(latencyMs=None)
    requests.put(f"{emulator.base}/_emulator/resource", json={"resourceId": None}, verify=emulator.ca, timeout=30)


@pytest.fixture
def acs_behaves(emulator: Emulator) -> Iterator[Callable[..., None]]:
    """Set emulator knobs (what real ACS does but does not document) for one test; they go back
    to the stack's defaults afterwards, and injected faults are cleared."""
    changed: set[str] = set()

    def configure(**knobs: Any) -> None:
        changed.update(knobs)
        emulator.configure(**knobs)

    yield configure
    emulator.clear_faults()
    if changed:
        emulator.configure(**{name: None for name in changed})


@pytest.fixture(params=["unique tokens", "same-second identical tokens"])
def identical_tokens(request: pytest.FixtureRequest, emulator: Emulator) -> Iterator[bool]:
    """Runs a test under both: real ACS may give the same string for identical issues within one
    second (its tokens carry whole seconds and no unique id), so a new token is shown by ACS's
    issue calls, and the strings are compared only where every issue is unique."""
    identical = request.param != "unique tokens"
    emulator.configure(identicalTokensWithinSecond=identical)
    yield identical
    emulator.configure(identicalTokensWithinSecond=None)


@pytest.fixture
def user() -> User:
    return new_user()


@pytest.fixture(scope="session")
def table(stack: dict):
    """The mapping table, read directly (as an operator would) to check what the service stored."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(stack["tablesConnectionString"])
    return service.create_table_if_not_exists("acsidentities")


class Secrets:
    """Every token, key, connection string and raw principal this run sent or received, so the
    last test can prove that none of them reached a log (tests/reliability/test_secrets_never_logged.py)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            # Short values (a 3-letter "token" in a fuzz case) would match ordinary words.
            self._values.update(v for v in values if isinstance(v, str) and len(v) >= 16)

    def all(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._values)


SECRETS = Secrets()

#: Request headers whose values are credentials: recorded whatever test sends them.
_CREDENTIAL_HEADERS = ("x-ms-client-principal", "authorization")


def record_secrets(headers: dict[str, str] | None, response: requests.Response | None = None, body: Any = None) -> None:
    """Note the credentials a request carried (headers, a Teams token in its body) and any token
    its answer handed out."""
    if isinstance(body, dict) and isinstance(body.get("teamsToken"), str):
        SECRETS.add(body["teamsToken"])
    for name, value in (headers or {}).items():
        if name.lower() in _CREDENTIAL_HEADERS and isinstance(value, str):
            SECRETS.add(value, value.partition(" ")[2])
    if response is not None and response.headers.get("Content-Type", "").startswith("application/json"):
        try:
            body = response.json()
        except ValueError:
            return
        if isinstance(body, dict):
            SECRETS.add(body.get("token") if isinstance(body.get("token"), str) else None)


def run_log_dir(stack: dict | None = None) -> Path:
    """This run's log folder: the stack's own logs, and every extra function host's (the stack
    empties it when a test run starts, so everything in it belongs to this run)."""
    if stack and stack.get("logDir"):
        return Path(stack["logDir"])
    offset = int(os.environ.get("DEVSTACK_PORT_OFFSET", "0") or 0)
    return ROOT / ".devstack" / ("logs" if offset == 0 else f"logs-{offset}")


#: Log files this run wrote outside run_log_dir() (e.g. a dev stack a test starts on other ports).
EXTRA_LOGS: list[Path] = []


def quiet_schedule(now: datetime | None = None) -> str:
    """A daily NCRONTAB schedule twelve hours from now: a timer that cannot fire during a test
    run, so no host started by a test sweeps on its own (the stack's 03:00 would, for every host
    alive at 03:00). Tests start the sweep by hand, as Azure Functions runs non-HTTP functions."""
    at = (now or datetime.now(timezone.utc)) + timedelta(hours=12)
    return f"0 {at.minute} {at.hour} * * *"


class HostStartError(RuntimeError):
    pass


class FunctionHost:
    """A second function host on its own port with other settings (e.g. connection strings).

    Started on a port picked free just before; if another process takes it first, this host
    fails to bind and exits, and a new port is tried. It is ready when *its own* function app
    answers GET /api/health with the service's JSON (not merely when something answers on the
    port), and its log (one file per host, written afresh) says it listens on that port."""

    _ATTEMPTS = 5

    def __init__(self, stack: dict, overrides: dict[str, str], name: str) -> None:
        env = {**os.environ, "CLEANUP_SCHEDULE": quiet_schedule(), **overrides}
        self.name = name
        for attempt in range(self._ATTEMPTS):
            self.port = _unused_port()
            self.base = f"http://127.0.0.1:{self.port}"
            self.log = run_log_dir(stack) / f"functions-{name}-{self.port}.log"
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "wb") as out:  # a fresh file: an old line can never satisfy a wait
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "devstack.funchost", "--app-dir", str(ROOT), "--host", "127.0.0.1",
                     "--port", str(self.port), "--settings", stack["functionSettingsFile"]],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                )
            try:
                self._wait_ready()
                return
            except HostStartError:
                if "Cannot listen on" not in self.log_text() or attempt == self._ATTEMPTS - 1:
                    raise
                self.proc.wait(10)  # the port was taken between picking and binding: try another

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _wait_ready(self) -> None:
        listening = f"listening on {self.base} "
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HostStartError(f"function host exited with {self.proc.returncode}; see {self.log}")
            if listening in self.log_text() and _answers_as_the_service(f"{self.base}/api/health"):
                return
            time.sleep(0.2)
        self.stop()
        raise HostStartError(f"function host did not start; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port() -> int:
    """A port nobody listens on now (for servers that bind it themselves and retry)."""
    return _unused_port()


def _answers_as_the_service(url: str) -> bool:
    """True when the service's own health function answered with its JSON (an unrelated server, or
    the host before the app loads, does not). Its headers are not required here: they are what
    tests check, and a host whose headers are wrong must still start so those tests can fail."""
    try:
        response = requests.get(url, timeout=30)
    except requests.RequestException:
        return False
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and (body.get("status") in ("healthy", "unhealthy") or "error" in body)


@pytest.fixture(scope="session")
def connection_string_api(stack: dict) -> Iterator[Api]:
    """The function app configured with connection strings (the local-emulator configuration)."""
    host = FunctionHost(stack, {
        "ACS_ENDPOINT": "", "TABLES_ENDPOINT": "",
        "ACS_CONNECTION_STRING": stack["acsConnectionString"],
        "TABLES_CONNECTION_STRING": stack["tablesConnectionString"],
    }, "connection-strings")
    yield Api(host.base, log=host.log)
    host.stop()


@pytest.fixture(scope="session", params=["managed-identity", "connection-strings"])
def any_api(request: pytest.FixtureRequest, api: Api) -> Api:
    """Both tested configurations: managed identity (the default) and connection strings."""
    if request.param == "managed-identity":
        return api
    return request.getfixturevalue("connection_string_api")
