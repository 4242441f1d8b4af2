"""Starts the whole local stack on loopback, as `make dev` and `make test` use it.

    python -m devstack.stack up            # the dev stack; state kept in .devstack/; Ctrl-C stops it
    python -m devstack.stack run -- CMD…   # a fresh in-memory stack around CMD (the tests), then stop

Parts (ports from the service's contract): the managed-identity endpoint (7092), the ACS Identity
emulator (7090, https), Azurite (10000-10002, https, accepting the identity's bearer tokens), a
local OIDC issuer (7093), the function host (7071: Core Tools' `func` when installed, otherwise
devstack.funchost) and the Static Web Apps CLI (4280). The function app reaches ACS and Tables
through DefaultAzureCredential and the local identity endpoint, exactly as in Azure.

It writes local.stack.json (how tests and tools find the stack) and, only when absent,
local.settings.json (the function app's settings).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".devstack"
BIN = ROOT / "node_modules" / ".bin"
HOST = "127.0.0.1"
# DEVSTACK_PORT_OFFSET shifts every port, so a second stack (say, a benchmark beside a test
# run) can run on the same machine; its description then goes to .devstack/stack-<offset>.json.
OFFSET = int(os.environ.get("DEVSTACK_PORT_OFFSET", "0"))
PORTS = {name: port + OFFSET for name, port in {
    "swa": 4280, "functions": 7071, "acs": 7090, "identity": 7092, "oidc": 7093, "telemetry": 7094,
    "blob": 10000, "queue": 10001, "table": 10002}.items()}
STACK_FILE = ROOT / "local.stack.json" if OFFSET == 0 else STATE / f"stack-{OFFSET}.json"
# Azurite's documented development account: public, the same on every machine, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
OIDC_AUDIENCE = "api://acs-token-service-local"


@dataclass(frozen=True)
class StackSecrets:
    """Per-machine values of the local stack, kept in .devstack so restarts keep working."""

    acs_access_key: str
    acs_resource_id: str
    identity_header: str


def _secrets() -> StackSecrets:
    path = STATE / "stack-secrets.json"
    if path.exists():
        return StackSecrets(**json.loads(path.read_text()))
    values = StackSecrets(
        acs_access_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        acs_resource_id=str(uuid.uuid4()),
        identity_header=secrets.token_urlsafe(24),
    )
    path.write_text(json.dumps(values.__dict__))
    path.chmod(0o600)
    return values


def _describe(pki, s: StackSecrets, functions_url: str) -> dict:
    acs = f"https://{HOST}:{PORTS['acs']}"
    tables = f"https://{HOST}:{PORTS['table']}/{AZURITE_ACCOUNT}"
    return {
        "functionHost": functions_url,
        "staticWebApp": f"http://{HOST}:{PORTS['swa']}",
        "acsEndpoint": acs,
        "acsAccessKey": s.acs_access_key,
        "acsConnectionString": f"endpoint={acs}/;accesskey={s.acs_access_key}",
        "acsResourceId": s.acs_resource_id,
        "tablesEndpoint": tables,
        "tablesConnectionString": (
            f"DefaultEndpointsProtocol=https;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"TableEndpoint={tables};"
        ),
        "storageConnectionString": (
            f"DefaultEndpointsProtocol=https;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=https://{HOST}:{PORTS['blob']}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=https://{HOST}:{PORTS['queue']}/{AZURITE_ACCOUNT};TableEndpoint={tables};"
        ),
        "identityEndpoint": f"http://{HOST}:{PORTS['identity']}/msi/token",
        "identityHeader": s.identity_header,
        "oidcIssuer": f"http://{HOST}:{PORTS['oidc']}",
        "oidcAudience": OIDC_AUDIENCE,
        "caCertFile": str(pki.ca_cert),
    }


def _app_settings(stack: dict) -> dict:
    """local.settings.json's Values for this stack: managed identity by default, as in Azure."""
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsFeatureFlags": "EnableWorkerIndexing",
        "AzureWebJobsStorage": stack["storageConnectionString"],
        "ACS_ENDPOINT": stack["acsEndpoint"],
        "TABLES_ENDPOINT": stack["tablesEndpoint"],
        "IDENTITY_TABLE_NAME": "acsidentities",
        "TRUST_CLIENT_PRINCIPAL": "true",
        # What App Service injects when its authentication is on: locally the SWA CLI plays the
        # platform in front of the function host, so the local host presents the same signal.
        "WEBSITE_AUTH_ENABLED": "True",
        # The deployment's defaults are closed (a role is required); the local stack lets any
        # signed-in user of any provider in, and exchanges any Teams token, so every part can be
        # tried. tests/trust/ starts hosts with the closed settings.
        "ACCESS_ALLOWED_PROVIDERS": "*",
        "ACCESS_REQUIRED_ROLES": "*",
        "TEAMS_EXCHANGE_ENABLED": "true",
        "TEAMS_ALLOWED_APP_IDS": "*",
        "TEAMS_ALLOWED_TENANT_IDS": "*",
        "OIDC_ISSUER": stack["oidcIssuer"],
        "OIDC_AUDIENCE": stack["oidcAudience"],
        # Chat scopes stay on locally (the page and tests exercise them; the host logs the
        # retirement warning line); a deployment defaults to voip only.
        "ACS_ALLOWED_SCOPES": "chat,voip",
        "ACS_DEFAULT_SCOPES": "chat,voip",
        # Teams meeting guests, so the page can show that flow (off by default in a deployment).
        "GUEST_ACCESS_ENABLED": "true",
        "TOKEN_DEFAULT_MINUTES": "60",
        "CLEANUP_SCHEDULE": "0 0 3 * * *",
    }


def _add_missing_settings(settings_file: Path, defaults: dict) -> None:
    """A local.settings.json written by an older version lacks settings added since (say, the
    platform-auth signal without which the principal header is refused): add those, never touch
    a value the developer set, and say which were added."""
    try:
        document = json.loads(settings_file.read_text(encoding="utf-8"))
        values = document["Values"]
    except (OSError, ValueError, KeyError, TypeError):
        print(f"{settings_file.name} is not readable JSON with a Values object; left as it is", file=sys.stderr)
        return
    missing = {name: value for name, value in defaults.items() if name not in values}
    if missing:
        values.update(missing)
        settings_file.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"{settings_file.name}: added settings it lacked: {', '.join(sorted(missing))}")


def _quiet_schedule() -> str:
    """A test run's cleanup schedule: daily, twelve hours from the start, so the timer cannot
    fire during the run (tests start the sweep by hand) whatever time of day the run begins."""
    at = datetime.now(timezone.utc) + timedelta(hours=12)
    return f"0 {at.minute} {at.hour} * * *"


def _runtime_env(stack: dict) -> dict:
    """What every process of the stack needs to reach the others: the local CA and the identity
    endpoint (these follow the running stack, so they are not left to local.settings.json)."""
    return {
        "SSL_CERT_FILE": stack["caCertFile"],
        "REQUESTS_CA_BUNDLE": stack["caCertFile"],
        "NODE_EXTRA_CA_CERTS": stack["caCertFile"],
        "IDENTITY_ENDPOINT": stack["identityEndpoint"],
        "IDENTITY_HEADER": stack["identityHeader"],
        "AZURE_FUNCTIONS_ENVIRONMENT": "Development",
    }


class Stack:
    def __init__(self, persistent: bool, quiet: bool) -> None:
        self.persistent = persistent
        self.quiet = quiet
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.logs = STATE / ("logs" if OFFSET == 0 else f"logs-{OFFSET}")

    def _fresh_logs(self) -> None:
        """One set of logs per start: a test run empties its folder (the tests read every log of
        the run for secrets, and the extra function hosts they start write there too); each
        part's log is written afresh either way, so no line from an earlier run can be mistaken
        for this one's."""
        self.logs.mkdir(parents=True, exist_ok=True)
        if not self.persistent:
            for old in self.logs.glob("*.log"):
                old.unlink(missing_ok=True)

    def _start(self, name: str, argv: list[str], env: dict, cwd: Path = ROOT) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "wb")
        out = log if self.quiet else None
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out or log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append((name, proc))

    def _wait(self, name: str, url: str | None = None, port: int | None = None, timeout: float = 90,
              context: ssl.SSLContext | None = None) -> None:
        deadline = time.monotonic() + timeout
        proc = dict(self.procs).get(name)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}; see {self.logs / (name + '.log')}")
            try:
                if url:
                    urllib.request.urlopen(url, timeout=2, context=context).read()
                else:
                    socket.create_connection((HOST, port), timeout=1).close()
                return
            except Exception as error:  # not up yet
                if url and getattr(error, "code", 0):
                    return  # it answers (any HTTP status means it is listening)
                time.sleep(0.2)
        raise SystemExit(f"{name} did not become ready in {timeout:.0f}s; see {self.logs / (name + '.log')}")

    def up(self) -> dict:
        from devstack.pki import ensure_pki

        STATE.mkdir(exist_ok=True)
        self._fresh_logs()
        for port_name, port in PORTS.items():
            with socket.socket() as probe:
                if probe.connect_ex((HOST, port)) == 0:
                    raise SystemExit(f"port {port} ({port_name}) is already in use: is another stack running?")
        pki = ensure_pki(STATE)
        s = _secrets()
        stack = _describe(pki, s, f"http://{HOST}:{PORTS['functions']}")
        stack["logDir"] = str(self.logs)
        env = {**os.environ, **_runtime_env(stack)}
        py = sys.executable

        # Secrets travel in the environment (IDENTITY_HEADER, ACS_EMULATOR_ACCESS_KEY), not argv.
        self._start("identity", [py, "-m", "devstack.identity_endpoint", "--host", HOST, "--port", str(PORTS["identity"]),
                                 "--state-dir", str(STATE)], env)
        suffix = "" if OFFSET == 0 else f"-{OFFSET}"
        acs_state = ["--state-file", str(STATE / f"acs-emulator{suffix}.json")] if self.persistent else []
        self._start("acs", [py, "-m", "devstack.acs_emulator", "--host", HOST, "--port", str(PORTS["acs"]),
                            "--state-dir", str(STATE), "--resource-id", s.acs_resource_id, *acs_state],
                    {**env, "ACS_EMULATOR_ACCESS_KEY": s.acs_access_key})
        azurite_state = ["--location", str(STATE / f"azurite{suffix}")] if self.persistent else ["--inMemoryPersistence"]
        self._start("azurite", [str(BIN / "azurite"), "--blobHost", HOST, "--queueHost", HOST, "--tableHost", HOST,
                                "--blobPort", str(PORTS["blob"]), "--queuePort", str(PORTS["queue"]),
                                "--tablePort", str(PORTS["table"]), "--cert", str(pki.server_cert),
                                "--key", str(pki.server_key), "--oauth", "basic", "--skipApiVersionCheck",
                                "--disableProductStyleUrl", "--silent", *azurite_state], env)
        self._start("oidc", [py, "-m", "devstack.oidc_issuer", "--host", HOST, "--port", str(PORTS["oidc"])], env)
        self._wait("identity", port=PORTS["identity"])
        self._wait("acs", port=PORTS["acs"])
        self._wait("azurite", port=PORTS["table"])
        self._wait("oidc", port=PORTS["oidc"])

        # The dev stack uses the user's local.settings.json (written only when absent); a test run
        # (or a stack on shifted ports) always uses fresh settings of its own, so a user's edits
        # cannot change what tests see.
        own_settings = self.persistent and OFFSET == 0
        settings_file = ROOT / "local.settings.json" if own_settings else STATE / f"stack-{OFFSET}.settings.json"
        if not settings_file.exists() or not own_settings:
            values = _app_settings(stack)
            if not self.persistent:
                values["CLEANUP_SCHEDULE"] = _quiet_schedule()
            settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}, indent=2) + "\n")
        else:
            _add_missing_settings(settings_file, _app_settings(stack))
        func = shutil.which("func")
        if func and self.persistent:
            self._start("functions", [func, "start", "--port", str(PORTS["functions"])], env)
        elif self.persistent:  # `make dev`: the host runs under the telemetry view (what an operator sees)
            self._start("functions", [py, "-m", "devstack.telemetry_view", "--host", HOST, "--port", str(PORTS["telemetry"]),
                                      "--", "--app-dir", str(ROOT), "--host", HOST, "--port", str(PORTS["functions"]),
                                      "--settings", str(settings_file)], env)
            stack["telemetryView"] = f"http://{HOST}:{PORTS['telemetry']}"
        else:
            self._start("functions", [py, "-m", "devstack.funchost", "--app-dir", str(ROOT), "--host", HOST,
                                      "--port", str(PORTS["functions"]), "--settings", str(settings_file)], env)
        self._wait("functions", url=f"http://{HOST}:{PORTS['functions']}/admin/host/status")

        web = ROOT / "web" / "dist"
        self._start("swa", [str(BIN / "swa"), "start", str(web), "--swa-config-location", str(web), "--api-devserver-url",
                            f"http://{HOST}:{PORTS['functions']}", "--host", HOST, "--port", str(PORTS["swa"]),
                            "--open", "false"], {**env, "SWA_CLI_DISABLE_TELEMETRY": "1"})
        self._wait("swa", url=f"http://{HOST}:{PORTS['swa']}/", timeout=120)

        stack["functionSettingsFile"] = str(settings_file)
        STACK_FILE.write_text(json.dumps(stack, indent=2) + "\n")
        return stack

    def down(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for name, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        STACK_FILE.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the dev stack and keep it running until Ctrl-C")
    run = sub.add_parser("run", help="start a fresh in-memory stack, run a command against it, stop")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    stack = Stack(persistent=args.command == "up", quiet=args.command == "run")
    # Ctrl-C and SIGTERM both stop everything, even when started from a shell that ignores
    # SIGINT for background jobs (the handler would otherwise be inherited as "ignore").
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        info = stack.up()
        if args.command == "up":
            print("\nLocal stack is up:")
            print(f"  web app (sign in here)   {info['staticWebApp']}")
            print(f"  function host            {info['functionHost']}/api/health")
            if info.get("telemetryView"):  # not when Core Tools' func runs the app
                print(f"  telemetry view           {info['telemetryView']}/")
            print(f"  ACS Identity emulator    {info['acsEndpoint']}/_emulator/identities")
            print(f"  managed identity         {info['identityEndpoint']}")
            print(f"  Azurite tables           {info['tablesEndpoint']}")
            print(f"  logs                     {stack.logs}/")
            print("Ctrl-C stops everything.")
            while all(p.poll() is None for _, p in stack.procs):
                time.sleep(1)
            dead = [n for n, p in stack.procs if p.poll() is not None]
            print(f"stopping: {', '.join(dead)} exited; see {stack.logs}/")
            return 1
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        env = {**os.environ, **_runtime_env(info), "LOCAL_STACK_FILE": str(STACK_FILE)}
        return subprocess.call(cmd, cwd=ROOT, env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
