"""The scripts azd runs around provisioning and deployment, run for real against local HTTP
servers that stand in for what they talk to in Azure (the function app, Blob Storage, Azure
Resource Manager): no Azure is reachable from here, so the stand-ins are the only mock, and they
answer with the status codes Azure would.

- verify-direct-access.sh (after provision and after deploy): SAFE 0, UNSAFE 1, COULD NOT VERIFY 3,
  each with its own message; an unreachable or failing app is never called unsafe.
- wait-for-roles.sh (before deploy): retries while storage answers 403, bounded, saying why.
- release-locks.sh (before `azd down`): refuses unless told, then deletes exactly the two locks.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HOOKS = REPO / "infra" / "hooks"


class StandIn:
    """A local HTTP server answering each request with the next scripted status (the last one
    repeats), recording method, path, query and headers of every request."""

    def __init__(self, statuses: list[int], location: str = "", delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.location = location
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                outer.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                if outer.delay:
                    time.sleep(outer.delay)
                status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                self.send_response(status)
                if outer.location:
                    self.send_header("Location", outer.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_DELETE = answer  # noqa: N815 (http.server's naming)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> "StandIn":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("SERVICE_API_URI", "TRUST_CLIENT_PRINCIPAL", "API_HOSTING", "ALLOW_DATA_DELETION")}
    clean.update(env)
    return subprocess.run(["sh", str(HOOKS / script), *args], capture_output=True, text=True, env=clean, timeout=120)


# --- verify-direct-access.sh -----------------------------------------------------------------

FAST = {"VERIFY_ATTEMPTS": "2", "VERIFY_RETRY_SECONDS": "0", "VERIFY_TIMEOUT_SECONDS": "5"}


def probe(statuses: list[int], location: str = "", delay: float = 0.0, **env: str) -> tuple[subprocess.CompletedProcess[str], StandIn]:
    with StandIn(statuses, location, delay) as app:
        result = run("verify-direct-access.sh", {**FAST, **env}, app.url + "/")
    return result, app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("status", [401, 403])
def test_probe_says_safe_when_the_platform_refuses_a_forged_principal(status: int) -> None:
    result, app = probe([status])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("verify-direct-access: SAFE: direct callers are refused")
    assert len(app.requests) == 1
    request = app.requests[0]
    assert request["method"] == "GET" and request["path"] == "/api/identity", "read-only: never creates an identity"
    principal = json.loads(base64.b64decode(request["headers"]["x-ms-client-principal"]))
    assert principal["userId"] == "forged-probe"


def test_probe_says_safe_when_direct_callers_are_sent_to_sign_in() -> None:
    result, _ = probe([302], "https://app.example.invalid/.auth/login/aad?post_login_redirect_uri=/api/identity")
    assert result.returncode == 0, result.stderr
    assert "SAFE: direct callers are sent to sign in" in result.stdout


@pytest.mark.parametrize(("status", "location"), [(200, ""), (404, ""), (400, ""), (429, ""), (302, "https://elsewhere.example.invalid/")])
def test_probe_says_unsafe_when_the_app_answers_a_forged_principal(status: int, location: str) -> None:
    result, app = probe([status], location)
    assert result.returncode == 1
    assert f"UNSAFE: the function app answered a forged x-ms-client-principal with HTTP {status}" in result.stderr
    assert "TRUST_CLIENT_PRINCIPAL false" in result.stderr
    assert "COULD NOT VERIFY" not in result.stderr
    assert len(app.requests) == 1, "a definite answer is not retried"


def test_probe_cannot_verify_an_app_that_keeps_failing_and_does_not_call_it_unsafe() -> None:
    result, app = probe([503])
    assert result.returncode == 3
    assert "COULD NOT VERIFY" in result.stderr and "not a finding that the app is unsafe" in result.stderr
    assert "UNSAFE" not in result.stderr.replace("not a finding that the app is unsafe", "")
    assert len(app.requests) == 2, "retried up to VERIFY_ATTEMPTS"


def test_probe_cannot_verify_an_app_that_refuses_connections() -> None:
    result = run("verify-direct-access.sh", FAST, f"http://127.0.0.1:{closed_port()}/")
    assert result.returncode == 3
    assert "COULD NOT VERIFY" in result.stderr


def test_probe_cannot_verify_an_app_whose_name_does_not_resolve() -> None:
    result = run("verify-direct-access.sh", FAST, "https://no-such-function-app.invalid/")
    assert result.returncode == 3
    assert "COULD NOT VERIFY" in result.stderr


def test_probe_cannot_verify_an_app_that_never_answers_in_time() -> None:
    result, app = probe([200], delay=3, VERIFY_TIMEOUT_SECONDS="1")
    assert result.returncode == 3, "a 200 that arrives after the timeout was never received"
    assert "COULD NOT VERIFY" in result.stderr
    assert len(app.requests) == 2


def test_probe_retries_while_the_app_starts_then_says_safe() -> None:
    result, app = probe([503, 401])
    assert result.returncode == 0, result.stderr
    assert len(app.requests) == 2
    assert "attempt 1/2" in result.stderr


def test_probe_checks_nothing_when_the_header_is_not_trusted() -> None:
    result, app = probe([200], TRUST_CLIENT_PRINCIPAL="false")
    assert result.returncode == 0
    assert "nothing to check" in result.stdout
    assert app.requests == []


def test_probe_without_a_url_is_a_usage_error() -> None:
    result = run("verify-direct-access.sh", FAST)
    assert result.returncode == 2
    assert "no function app URL" in result.stderr


def test_the_three_outcomes_have_distinct_exit_codes_and_messages() -> None:
    outcomes = {}
    for statuses in ([401], [200], [503]):
        result, _ = probe(statuses)
        verdicts = re.findall(r"^verify-direct-access: (SAFE|UNSAFE|COULD NOT VERIFY):", result.stdout + result.stderr, re.M)
        assert len(verdicts) == 1, result.stdout + result.stderr
        outcomes[result.returncode] = verdicts[0]
    assert outcomes == {0: "SAFE", 1: "UNSAFE", 3: "COULD NOT VERIFY"}


# --- azure.yaml runs them at the right moments -----------------------------------------------


def azure_yaml_hooks() -> dict[str, dict[str, str]]:
    """hook name -> {platform: run line} for the top-level and service hooks of azure.yaml."""
    hooks: dict[str, dict[str, str]] = {}
    current: str | None = None
    platform: str | None = None
    for line in (REPO / "azure.yaml").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        match = re.fullmatch(r"(pre|post)(provision|deploy|down|package):", stripped)
        if match:
            current = stripped[:-1]
            hooks.setdefault(current, {})
        elif stripped in ("posix:", "windows:"):
            platform = stripped[:-1]
        elif stripped.startswith("run:") and current and platform:
            hooks[current][platform] = stripped[len("run:"):].strip()
    return hooks


def test_the_probe_runs_after_every_provision_and_every_deployment() -> None:
    hooks = azure_yaml_hooks()
    for hook in ("postprovision", "postdeploy"):
        assert "verify-direct-access.sh" in hooks[hook]["posix"]
        assert "verify-direct-access.ps1" in hooks[hook]["windows"]
    assert "wait-for-roles.sh" in hooks["predeploy"]["posix"]
    assert "release-locks.sh" in hooks["predown"]["posix"]


@pytest.mark.parametrize(("hook", "status", "expected"), [
    ("postprovision", 503, 0),  # could not verify before the code is deployed: azd goes on
    ("postprovision", 200, 1),  # unsafe stops azd
    ("postprovision", 401, 0),
    ("postdeploy", 503, 3),  # could not verify with the code serving: azd stops
    ("postdeploy", 200, 1),
    ("postdeploy", 401, 0),
])
def test_azd_stops_on_unsafe_always_and_on_unverified_only_after_deployment(hook: str, status: int, expected: int) -> None:
    command = azure_yaml_hooks()[hook]["posix"]
    with StandIn([status]) as app:
        env = {k: v for k, v in os.environ.items() if k not in ("TRUST_CLIENT_PRINCIPAL",)}
        env.update(FAST, SERVICE_API_URI=app.url)
        result = subprocess.run(["sh", "-c", command], cwd=REPO, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == expected, result.stdout + result.stderr


# --- wait-for-roles.sh -----------------------------------------------------------------------


def wait_for_roles(statuses: list[int], **env: str) -> tuple[subprocess.CompletedProcess[str], StandIn]:
    with StandIn(statuses) as storage:
        result = run("wait-for-roles.sh", {
            "API_HOSTING": "flex", "AZURE_PRINCIPAL_ID": "00000000-0000-0000-0000-000000000001",
            "AZURE_STORAGE_BLOB_ENDPOINT": storage.url + "/", "DEPLOYMENT_CONTAINER_NAME": "app-package-abc",
            "STORAGE_BEARER_TOKEN": "stand-in-token", "ROLE_WAIT_SECONDS": "2", "ROLE_WAIT_INTERVAL_SECONDS": "1", **env})
    return result, storage


def test_deploy_waits_through_403_until_the_role_assignments_take_effect() -> None:
    result, storage = wait_for_roles([403, 403, 200], ROLE_WAIT_SECONDS="10")
    assert result.returncode == 0, result.stderr
    assert len(storage.requests) == 3
    assert result.stdout.count("waiting for the Storage Blob Data role assignments made by this provision to take effect") == 2
    assert "is in effect (attempt 3" in result.stdout
    request = storage.requests[0]
    assert request["path"] == "/app-package-abc?restype=container&comp=list&maxresults=1", "reads, never writes"
    assert request["headers"]["Authorization"] == "Bearer stand-in-token"


def test_deploy_wait_is_bounded_and_says_so() -> None:
    result, storage = wait_for_roles([403])
    assert result.returncode == 1
    assert "still HTTP 403 after 2 s" in result.stderr
    assert len(storage.requests) == 3, "ROLE_WAIT_SECONDS=2 at one try per second: tries at 0, 1 and 2 s"


def test_deploy_wait_stops_at_once_when_the_container_is_missing() -> None:
    result, storage = wait_for_roles([404])
    assert result.returncode == 1
    assert "does not exist" in result.stderr and len(storage.requests) == 1


def test_nothing_to_wait_for_on_the_dedicated_plan() -> None:
    result, storage = wait_for_roles([403], API_HOSTING="dedicated")
    assert result.returncode == 0 and "nothing to wait for" in result.stdout
    assert storage.requests == []


# --- release-locks.sh ------------------------------------------------------------------------

ACS_LOCK = "/subscriptions/s/resourceGroups/rg-x/providers/Microsoft.Communication/communicationServices/acs-x/providers/Microsoft.Authorization/locks/keep-acs-identities"
STORAGE_LOCK = "/subscriptions/s/resourceGroups/rg-x/providers/Microsoft.Storage/storageAccounts/stx/providers/Microsoft.Authorization/locks/keep-identity-mappings"


def release_locks(statuses: list[int], **env: str) -> tuple[subprocess.CompletedProcess[str], StandIn]:
    with StandIn(statuses) as arm:
        result = run("release-locks.sh", {"ARM_ENDPOINT": arm.url, "ARM_BEARER_TOKEN": "stand-in-token",
                                          "ACS_LOCK_ID": ACS_LOCK, "STORAGE_LOCK_ID": STORAGE_LOCK, **env})
    return result, arm


def test_azd_down_is_refused_and_nothing_touched_unless_data_deletion_is_allowed() -> None:
    result, arm = release_locks([200])
    assert result.returncode == 1
    assert "refusing" in result.stderr and "azd env set ALLOW_DATA_DELETION true" in result.stderr
    assert arm.requests == []


def test_azd_down_deletes_exactly_the_two_locks_when_allowed() -> None:
    result, arm = release_locks([200, 204], ALLOW_DATA_DELETION="true")
    assert result.returncode == 0, result.stderr
    assert [(r["method"], r["path"]) for r in arm.requests] == [
        ("DELETE", f"{ACS_LOCK}?api-version=2020-05-01"), ("DELETE", f"{STORAGE_LOCK}?api-version=2020-05-01")]
    assert all(r["headers"]["Authorization"] == "Bearer stand-in-token" for r in arm.requests)


def test_locks_already_gone_are_fine() -> None:
    result, _ = release_locks([404], ALLOW_DATA_DELETION="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already gone") == 2


def test_a_lock_that_cannot_be_deleted_stops_azd_down() -> None:
    result, arm = release_locks([403, 200], ALLOW_DATA_DELETION="true")
    assert result.returncode == 1
    assert "could not delete" in result.stderr and "Owner or User Access Administrator" in result.stderr
    assert len(arm.requests) == 2


def test_the_lock_ids_azd_down_needs_are_deployment_outputs() -> None:
    main = (REPO / "infra" / "main.bicep").read_text(encoding="utf-8")
    for output in ("ACS_LOCK_ID", "STORAGE_LOCK_ID", "AZURE_STORAGE_BLOB_ENDPOINT", "DEPLOYMENT_CONTAINER_NAME", "API_HOSTING", "SERVICE_API_URI"):
        assert re.search(rf"^output {output} string = ", main, re.M), output
