"""The running local stack as the benchmarks see it: its description, the emulator's control
surface, the function host's process, and app users signed in through Static Web Apps."""

from __future__ import annotations

import base64
import json
import os
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
SCOPES = ["chat", "voip"]
TOKEN_MINUTES = 60


def load_stack() -> dict[str, Any]:
    """The stack description written by `python -m devstack.stack run` (LOCAL_STACK_FILE)."""
    path = Path(os.environ.get("LOCAL_STACK_FILE", ROOT / "local.stack.json"))
    if not path.exists():
        raise SystemExit("no local stack: run the benchmarks with `make bench`, which starts one")
    return json.loads(path.read_text())


def tls_context(stack: dict[str, Any]) -> ssl.SSLContext:
    """Verifies the stack's servers against its own CA (never an unverified context)."""
    return ssl.create_default_context(cafile=stack["caCertFile"])


def principal_header(user_id: str, roles: tuple[str, ...] = ("anonymous", "authenticated")) -> str:
    """The x-ms-client-principal header Static Web Apps sets for a signed-in GitHub user."""
    principal = {"identityProvider": "github", "userId": user_id, "userDetails": f"{user_id}@example.test",
                 "userRoles": list(roles)}
    return base64.b64encode(json.dumps(principal).encode()).decode()


@dataclass(frozen=True)
class AppUser:
    """A signed-in app user; ``headers`` are what their browser's requests carry behind SWA."""

    user_id: str
    headers: dict[str, str]

    @property
    def app_user_id(self) -> str:
        return f"github|{self.user_id}"


def new_users(count: int, label: str) -> list[AppUser]:
    run = uuid.uuid4().hex[:8]
    users = []
    for i in range(count):
        user_id = f"bench-{label}-{run}-{i}"
        users.append(AppUser(user_id, {"x-ms-client-principal": principal_header(user_id)}))
    return users


class Emulator:
    """The ACS Identity emulator's control surface (/_emulator/…)."""

    def __init__(self, session: aiohttp.ClientSession, stack: dict[str, Any]) -> None:
        self._session = session
        self._base = f"{stack['acsEndpoint']}/_emulator"
        self._ssl = tls_context(stack)

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self._session.request(method, f"{self._base}/{path}", json=body, ssl=self._ssl) as response:
            response.raise_for_status()
            return await response.json() if response.status != 204 else None

    async def configure(self, **config: Any) -> dict[str, Any]:
        return await self._call("PUT", "config", config)

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "stats")

    async def identities(self) -> set[str]:
        """Every identity the emulator holds that is not deleted."""
        return set((await self._call("GET", "identities"))["identities"])


def calls(before: dict[str, Any], after: dict[str, Any], operation: str) -> int:
    """ACS calls of one operation between two stats snapshots."""
    return after["calls"].get(operation, 0) - before["calls"].get(operation, 0)


def throttled(before: dict[str, Any], after: dict[str, Any]) -> int:
    return after["throttledTotal"] - before["throttledTotal"]


def function_host_process(stack: dict[str, Any]) -> psutil.Process:
    """The process serving the function host's port (found by its listening socket, else by
    its command line), so its CPU and memory can be read."""
    return process_listening_on(urlsplit(stack["functionHost"]).port)


def process_listening_on(port: int | None) -> psutil.Process:
    """The process listening on a local TCP port (else a function host named by its command line)."""
    try:
        for connection in psutil.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port and connection.pid:
                return psutil.Process(connection.pid)
    except psutil.AccessDenied:
        pass
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "devstack.funchost" in cmdline and str(port) in cmdline:
            return process
    raise SystemExit(f"no process listens on port {port}")


def settings_env(stack: dict[str, Any]) -> dict[str, str]:
    """The function app's settings for this stack (its settings file over the environment),
    for running the app's own code in the benchmark process."""
    values = json.loads(Path(stack["functionSettingsFile"]).read_text())["Values"]
    return {**os.environ, **{k: str(v) for k, v in values.items()}}
