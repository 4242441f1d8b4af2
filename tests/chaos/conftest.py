"""Chaos tests: a dependency broken mid-request or mid-sweep, at a point the test observes (a
counter at the ACS emulator, bytes through a proxy), never at a guessed time.

Every test here judges the outcome by what ACS holds: the identities the emulator has (it can
list them; real ACS cannot) against what the service recorded (mapping rows and guest rows). An
identity live at ACS and recorded nowhere is an orphan forever in Azure.

Function hosts are started beside the stack's own, sharing its Azurite and ACS emulator, with
ACS and/or Table Storage reached through a FaultProxy when the test needs to break them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.fault_proxy import FaultProxy
from tests.conftest import Api, Emulator, FunctionHost

ADMIN = ("anonymous", "authenticated", "admin")


@dataclass
class ChaosHost:
    """A function host whose ACS and/or Table Storage traffic goes through proxies the test holds."""

    host: FunctionHost
    api: Api
    acs: FaultProxy | None = None
    tables: FaultProxy | None = None
    killed: bool = False

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no grace, as when the platform's process dies."""
        os.kill(self.host.proc.pid, signal.SIGKILL)
        self.host.proc.wait(10)
        self.killed = True

    def log(self) -> str:
        return self.host.log_text()


@pytest.fixture
def chaos_host(stack: dict) -> Iterator[Callable[..., ChaosHost]]:
    made: list[ChaosHost] = []

    def start(name: str, overrides: dict[str, str] | None = None, acs: bool = False, tables: bool = False) -> ChaosHost:
        settings = dict(overrides or {})
        acs_proxy = tables_proxy = None
        if acs:
            parts = urlsplit(stack["acsEndpoint"])
            acs_proxy = FaultProxy(parts.hostname, parts.port)
            settings["ACS_ENDPOINT"] = f"https://127.0.0.1:{acs_proxy.port}"
        if tables:
            parts = urlsplit(stack["tablesEndpoint"])
            tables_proxy = FaultProxy(parts.hostname, parts.port)
            settings["TABLES_ENDPOINT"] = f"https://127.0.0.1:{tables_proxy.port}{parts.path}"
        host = FunctionHost(stack, settings, f"chaos-{name}")
        chaos = ChaosHost(host, Api(host.base, log=host.log), acs_proxy, tables_proxy)
        made.append(chaos)
        return chaos

    yield start
    for chaos in made:
        for proxy in (chaos.acs, chaos.tables):
            if proxy is not None:
                proxy.release()
                proxy.up()
        if not chaos.killed:
            chaos.host.stop()
        for proxy in (chaos.acs, chaos.tables):
            if proxy is not None:
                proxy.close()


@pytest.fixture
def acs(quiet_emulator: Emulator) -> Emulator:
    """The emulator, with no fault, latency or resource switch outliving the test."""
    return quiet_emulator


def recorded(table: Any) -> set[str]:
    """Every ACS identity the service recorded: mapping rows and guest rows."""
    mapped = {e["CommunicationUserId"] for e in table.query_entities("RowKey eq 'identity'")}
    guests = {e["RowKey"] for e in table.query_entities("PartitionKey eq 'guests'")}
    return mapped | guests


def unrecorded(emulator: Emulator, table: Any) -> set[str]:
    """Live ACS identities the service recorded nowhere: orphans, in Azure, forever."""
    return emulator.identities() - recorded(table)


def creates(emulator: Emulator) -> int:
    return emulator.calls("createIdentity", "createIdentityAndToken")


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30, step: float = 0.01) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def settle(condition: Callable[[], bool], seconds: float) -> bool:
    """Give background work up to ``seconds`` to make ``condition`` true; whether it did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def in_background(call: Callable[[], requests.Response]) -> tuple[threading.Thread, dict[str, Any]]:
    """Make ``call`` on a thread: its answer lands under "r", or, when the connection is lost (a
    host killed mid-request), the error under "error", so the test sees it rather than a stray
    thread exception."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["r"] = call()
        except requests.ConnectionError as error:
            result["error"] = error

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    return worker, result


def delete_at_acs(stack: dict, identities: set[str]) -> None:
    """Test cleanup only: an operator could not do this (nobody knows these ids in Azure)."""
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

    client = CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"])
    for identity in identities:
        try:
            client.delete_user(CommunicationUserIdentifier(identity))
        except Exception:  # already gone, or another resource's: nothing to clean
            pass


def run_sweep(host: FunctionHost, seconds: float = 60) -> str:
    """Run the timer function on ``host`` now (as Azure Functions runs any non-HTTP function by
    hand) and return the summary line it logged."""
    from tests.lifecycle.conftest import run_cleanup, summary_after

    lines = len(host.log_text().splitlines())
    run_cleanup(host.base)
    return summary_after(host, lines, seconds)
