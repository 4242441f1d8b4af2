"""Fixtures that run the local ACS emulator and managed-identity endpoint for these tests.

Both servers run in-process, each on its own event loop in a background thread, on free
loopback ports. Clients trust the dev stack's local CA through SSL_CERT_FILE and
REQUESTS_CA_BUNDLE, set before aiohttp is imported because aiohttp builds its default verifying
TLS context once, at import time.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from devstack.pki import Pki, ensure_pki  # noqa: E402  (no aiohttp import behind this one)

STATE_DIR = Path(os.environ.get("DEVSTACK_STATE_DIR", REPO / ".devstack"))
PKI: Pki = ensure_pki(STATE_DIR)
os.environ["SSL_CERT_FILE"] = str(PKI.ca_cert)
os.environ["REQUESTS_CA_BUNDLE"] = str(PKI.ca_cert)
if "aiohttp.connector" in sys.modules:  # imported before this file: teach its context our CA too
    sys.modules["aiohttp.connector"]._SSL_CONTEXT_VERIFIED.load_verify_locations(cafile=str(PKI.ca_cert))

import pytest  # noqa: E402
import requests  # noqa: E402
from aiohttp import web  # noqa: E402

from devstack.acs_emulator import EmulatorConfig, create_app, sign_request_headers, start  # noqa: E402
from devstack.identity_endpoint import IdentityEndpointConfig  # noqa: E402
from devstack.identity_endpoint import create_app as create_identity_app  # noqa: E402

API_VERSION = "2023-10-01"


class ServerThread:
    """An aiohttp app served from a private event loop in a daemon thread."""

    def __init__(self, app: web.Application, ssl_context: Any = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = self._run(self._serve(app, ssl_context))
        self.port: int = self._runner.addresses[0][1]
        self._stopped = False

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    @staticmethod
    async def _serve(app: web.Application, ssl_context: Any) -> web.AppRunner:
        if ssl_context is not None:
            return await start(app, "127.0.0.1", 0, ssl_context, access_log=False)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@dataclass(frozen=True)
class IdentityEndpoint:
    url: str
    base: str
    secret: str
    config: IdentityEndpointConfig

    def entra_user_token(self, oid: str, app_id: str, expires_in_seconds: int | None = None) -> str:
        body: dict[str, Any] = {"oid": oid, "appId": app_id}
        if expires_in_seconds is not None:
            body["expiresInSeconds"] = expires_in_seconds
        response = requests.post(f"{self.base}/_local/entra-user-token", json=body, timeout=10)
        response.raise_for_status()
        return response.json()["token"]

    def token(self, resource: str) -> str:
        response = requests.get(
            self.url,
            params={"resource": resource, "api-version": "2019-08-01"},
            headers={"X-IDENTITY-HEADER": self.secret},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]


@dataclass(frozen=True)
class LocalAcs:
    endpoint: str
    host: str
    access_key: str
    resource_id: str
    stop: Callable[[], None]

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.endpoint}/;accesskey={self.access_key}"

    def control(self, method: str, path: str, json: Any = None) -> requests.Response:
        return requests.request(method, f"{self.endpoint}/_emulator/{path}", json=json, timeout=10)

    def verify(self, token: str) -> dict[str, Any]:
        response = self.control("POST", "tokens:verify", {"token": token})
        response.raise_for_status()
        return response.json()

    def configure(self, **changes: Any) -> None:
        self.control("PUT", "config", changes).raise_for_status()

    def live_ids(self) -> list[str]:
        return self.control("GET", "identities").json()["identities"]

    def signed(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        api_version: str | None = API_VERSION,
        key: str | None = None,
        date: str | None = None,
        tamper: Callable[[bytes], bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """A raw request signed as the SDK signs it; ``tamper`` changes the body after signing."""
        path_and_query = path if api_version is None else f"{path}?api-version={api_version}"
        signing = sign_request_headers(base64.b64decode(key or self.access_key), method, path_and_query, self.host, body, date)
        sent = tamper(body) if tamper else body
        all_headers = {"Content-Type": "application/json", **signing, **(headers or {})}
        return requests.request(method, f"{self.endpoint}{path_and_query}", data=sent, headers=all_headers, timeout=10)

    def bearer(self, method: str, path: str, token: str, body: bytes = b"") -> requests.Response:
        return requests.request(
            method,
            f"{self.endpoint}{path}?api-version={API_VERSION}",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=10,
        )


@pytest.fixture(scope="session")
def pki() -> Pki:
    return PKI


@pytest.fixture(scope="session")
def identity_endpoint() -> Iterator[IdentityEndpoint]:
    config = IdentityEndpointConfig(signing_key_pem=PKI.signing_key.read_bytes(), secret=secrets.token_urlsafe(16))
    server = ServerThread(create_identity_app(config))
    base = f"http://127.0.0.1:{server.port}"
    yield IdentityEndpoint(url=f"{base}/msi/token", base=base, secret=config.secret, config=config)
    server.stop()


def emulator_config(**overrides: Any) -> EmulatorConfig:
    values: dict[str, Any] = {
        "access_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "resource_id": str(uuid.uuid4()),
        "identity_public_key_pem": PKI.signing_public.read_bytes(),
        "access_log": False,
    }
    values.update(overrides)
    return EmulatorConfig(**values)


@pytest.fixture(scope="session")
def start_emulator() -> Iterator[Callable[[EmulatorConfig], LocalAcs]]:
    """Start extra emulators (e.g. with a state file); all are stopped at the end of the session."""
    servers: list[ServerThread] = []

    def _start(config: EmulatorConfig) -> LocalAcs:
        server = ServerThread(create_app(config), PKI.server_ssl_context())
        servers.append(server)
        host = f"127.0.0.1:{server.port}"
        return LocalAcs(
            endpoint=f"https://{host}", host=host, access_key=config.access_key, resource_id=config.resource_id,
            stop=server.stop,
        )

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def acs_server(start_emulator: Callable[[EmulatorConfig], LocalAcs]) -> LocalAcs:
    return start_emulator(emulator_config())


@pytest.fixture
def acs(acs_server: LocalAcs) -> Iterator[LocalAcs]:
    """The session's ACS emulator, reset to a clean state (no identities, faults or limits) for each test."""
    acs_server.control("POST", "reset").raise_for_status()
    yield acs_server
    acs_server.control("POST", "reset").raise_for_status()


@pytest.fixture
def managed_identity_env(monkeypatch: pytest.MonkeyPatch, identity_endpoint: IdentityEndpoint) -> IdentityEndpoint:
    """The environment App Service gives a function app with a system-assigned identity."""
    for name in (
        "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity_endpoint.url)
    monkeypatch.setenv("IDENTITY_HEADER", identity_endpoint.secret)
    return identity_endpoint


class SdkClient:
    """The real CommunicationIdentityClient, sync or aio, behind one blocking interface, so each
    behaviour is written once and checked with both flavours. The aio client lives on its own
    event loop for the duration of the test."""

    def __init__(self, flavour: str, auth: str, acs: LocalAcs) -> None:
        self.flavour, self.auth = flavour, auth
        self._loop: asyncio.AbstractEventLoop | None = None
        if flavour == "sync":
            from azure.communication.identity import CommunicationIdentityClient
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential() if auth == "managed_identity" else None
            self._client = (
                CommunicationIdentityClient(acs.endpoint, self._credential)
                if self._credential
                else CommunicationIdentityClient.from_connection_string(acs.connection_string)
            )
        else:
            from azure.communication.identity.aio import CommunicationIdentityClient as AioClient
            from azure.identity.aio import DefaultAzureCredential as AioCredential

            self._loop = asyncio.new_event_loop()

            async def build() -> Any:
                if auth == "managed_identity":
                    self._credential = AioCredential()
                    return AioClient(acs.endpoint, self._credential)
                self._credential = None
                return AioClient.from_connection_string(acs.connection_string)

            self._client = self._loop.run_until_complete(build())

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        if self._loop is None:
            return method
        loop = self._loop
        return lambda *args, **kwargs: loop.run_until_complete(method(*args, **kwargs))

    def close(self) -> None:
        if self._loop is None:
            # The sync client has no close(); its session goes with the object.
            if self._credential is not None:
                self._credential.close()
            return
        self._loop.run_until_complete(self._client.close())
        if self._credential is not None:
            self._loop.run_until_complete(self._credential.close())
        self._loop.close()


@pytest.fixture(
    params=[
        ("sync", "connection_string"),
        ("sync", "managed_identity"),
        ("aio", "connection_string"),
        ("aio", "managed_identity"),
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def sdk(request: pytest.FixtureRequest, acs: LocalAcs) -> Iterator[SdkClient]:
    """The real SDK against the emulator: sync and aio, with a connection string (HMAC) and with
    DefaultAzureCredential through the local managed-identity endpoint (bearer)."""
    flavour, auth = request.param
    if auth == "managed_identity":
        request.getfixturevalue("managed_identity_env")
    client = SdkClient(flavour, auth, acs)
    yield client
    client.close()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CliServer:
    """A server started with its command line, as the dev stack's launcher starts it."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        import subprocess

        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline().strip()

    def stop(self) -> int:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)
