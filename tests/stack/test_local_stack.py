"""The local stack as `make dev` starts it: every part of the contract on its port, reachable the
way the function app reaches Azure (managed identity over TLS with the local CA)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from tests.conftest import EXTRA_LOGS

ROOT = Path(__file__).resolve().parents[2]


def _answers(url: str, ca: str) -> int:
    return requests.get(url, verify=ca, timeout=10, allow_redirects=False).status_code


def _probe_every_part(stack: dict) -> None:
    ca = stack["caCertFile"]
    assert _answers(f"{stack['functionHost']}/api/health", ca) == 200
    assert _answers(f"{stack['staticWebApp']}/", ca) in (200, 302)
    assert _answers(f"{stack['acsEndpoint']}/_emulator/identities", ca) == 200
    assert _answers(stack["oidcIssuer"] + "/.well-known/openid-configuration", ca) == 200
    identity = requests.get(stack["identityEndpoint"], params={"resource": "https://storage.azure.com", "api-version": "2019-08-01"},
                            headers={"X-IDENTITY-HEADER": stack["identityHeader"]}, timeout=10)
    assert identity.status_code == 200 and identity.json()["access_token"]
    tables = stack["tablesEndpoint"]
    for port_offset in (0, 1, 2):  # blob, queue, table: all https with the local CA
        host, port = tables.split("//")[1].split("/")[0].split(":")
        url = f"https://{host}:{int(port) - 2 + port_offset}/"
        assert _answers(url, ca) < 500


def test_every_part_of_the_stack_answers_on_its_port(stack: dict):
    _probe_every_part(stack)


def test_tables_sdk_with_managed_identity_reads_and_writes_azurite_over_tls(stack: dict, monkeypatch):
    from azure.data.tables import TableServiceClient
    from azure.identity import DefaultAzureCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", stack["identityEndpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", stack["identityHeader"])
    service = TableServiceClient(endpoint=stack["tablesEndpoint"], credential=DefaultAzureCredential(),
                                 connection_verify=stack["caCertFile"])
    table = service.create_table_if_not_exists(f"probe{uuid.uuid4().hex[:8]}")
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "Value": 42})
    assert table.get_entity("p", "r")["Value"] == 42
    service.delete_table(table.table_name)


_BASE_PORTS = (4280, 7071, 7090, 7092, 7093, 7094, 10000, 10001, 10002)


def _free_offset() -> int:
    """A port offset whose nine ports are all free now: other stacks (another test run, a
    developer's `make dev`) may be using any fixed one."""
    mine = int(os.environ.get("DEVSTACK_PORT_OFFSET", "0") or 0)
    for offset in range(mine + 37, mine + 37 + 50 * 13, 13):
        probes = []
        try:
            for port in _BASE_PORTS:
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port + offset))
            return offset
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise AssertionError("no free port offset for a second stack")


def test_dev_stack_starts_every_part_and_stops_on_ctrl_c():
    """`make dev`'s launcher on shifted ports: it writes its description, every part answers, and
    Ctrl-C (SIGINT) stops all of them."""
    for attempt in range(3):
        offset = _free_offset()
        description = ROOT / ".devstack" / f"stack-{offset}.json"
        description.unlink(missing_ok=True)
        env = {**os.environ, "DEVSTACK_PORT_OFFSET": str(offset)}
        proc = subprocess.Popen([sys.executable, "-m", "devstack.stack", "up"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        logs = ROOT / ".devstack" / f"logs-{offset}"
        try:
            deadline = time.monotonic() + 180
            while not description.exists() and proc.poll() is None:
                assert time.monotonic() < deadline, "the dev stack did not come up"
                time.sleep(0.5)
            if proc.poll() is not None:
                output = proc.stdout.read()
                if "already in use" in output and attempt < 2:
                    continue  # another process took a port between the probe and the start
                raise AssertionError(output)
            stack = json.loads(description.read_text())
            _probe_every_part(stack)
            # `make dev` shows the app's figures (devstack/telemetry_view.py) unless Core Tools runs it.
            assert shutil.which("func") or requests.get(f"{stack['telemetryView']}/metrics.json", timeout=10).status_code == 200
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
            output = proc.communicate(timeout=60)[0]
            EXTRA_LOGS.extend(logs.glob("*.log"))  # its logs are this run's too (checked for secrets)
        assert "Local stack is up" in output
        assert not description.exists()
        return
