"""requests.http, the file a developer clicks through in the editor: every request in it is sent,
top to bottom, to the running local stack and answers the status (and error code) the file says.

The file's addresses are those of `make dev` (offset 0); the test points them at the stack it runs
against and checks they differ from it only by DEVSTACK_PORT_OFFSET, so the file cannot drift
from the stack's ports.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import record_secrets
from tests.devtools.http_file import HttpFile, parse, resolver

ROOT = Path(__file__).resolve().parents[2]
REQUESTS_FILE = ROOT / "requests.http"
OFFSET = int(os.environ.get("DEVSTACK_PORT_OFFSET", "0") or 0)


@pytest.fixture(scope="module")
def http_file() -> HttpFile:
    return parse(REQUESTS_FILE.read_text(encoding="utf-8"))


def _stack_addresses(stack: dict) -> dict[str, str]:
    return {
        "functions": stack["functionHost"],
        "emulator": stack["acsEndpoint"],
        "identityEndpoint": stack["identityEndpoint"].rsplit("/msi/", 1)[0],
        "issuer": stack["oidcIssuer"],
    }


def _shifted(url: str, offset: int) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port + offset}"


def test_file_addresses_are_the_dev_stacks(http_file: HttpFile, stack: dict):
    for name, address in _stack_addresses(stack).items():
        assert _shifted(http_file.variables[name], OFFSET) == address, name
    assert http_file.variables["audience"] == stack["oidcAudience"]


def test_each_principal_is_the_json_its_comment_shows(http_file: HttpFile):
    principals = {n: v for n, v in http_file.variables.items() if n.endswith("Principal")}
    assert {"alicePrincipal", "adminPrincipal", "deletedPrincipal"} <= set(principals)
    for name, value in principals.items():
        assert json.loads(base64.b64decode(value)) == json.loads(http_file.variable_comments[name]), name
    admin = json.loads(base64.b64decode(principals["adminPrincipal"]))
    assert "admin" in admin["userRoles"]


def test_every_function_route_and_emulator_control_has_a_request(http_file: HttpFile):
    source = (ROOT / "function_app.py").read_text(encoding="utf-8")
    routes = {(method, f"/api/{route}") for route, methods in re.findall(r'@app\.route\(route="([^"]+)", methods=\[([^\]]+)\]', source)
              for method in re.findall(r'"(\w+)"', methods)}
    assert len(routes) >= 7
    sent = {(r.method, urlsplit(r.url.replace("{{functions}}", "http://host")).path) for r in http_file.requests
            if r.url.startswith("{{functions}}")}
    assert routes <= sent, f"no request for {sorted(routes - sent)}"
    controls = {(r.method, r.url.replace("{{emulator}}", "")) for r in http_file.requests if r.url.startswith("{{emulator}}")}
    assert {("GET", "/_emulator/identities"), ("POST", "/_emulator/faults"), ("DELETE", "/_emulator/faults"),
            ("PUT", "/_emulator/config"), ("GET", "/_emulator/stats")} <= controls


def test_every_request_in_the_file_answers_the_documented_status(http_file: HttpFile, stack: dict):
    missing = [r.line for r in http_file.requests if r.expect_status is None]
    assert not missing, f"requests without '# expect' on lines {missing}"
    variables = {**http_file.variables, **_stack_addresses(stack)}
    responses: dict[str, object] = {}
    substitute = resolver(variables, responses)
    session = requests.Session()
    outcomes = []
    try:
        for request in http_file.requests:
            headers = {name: substitute(value) for name, value in request.headers}
            body = substitute(request.body).encode() if request.body else None
            response = session.request(request.method, substitute(request.url), headers=headers, data=body,
                                       verify=stack["caCertFile"], timeout=60, allow_redirects=False)
            record_secrets(headers, response)  # the last test of a run checks none of them reached a log
            code = None
            if response.headers.get("Content-Type", "").startswith("application/json"):
                document = response.json()
                if request.name:
                    responses[request.name] = document
                if isinstance(document, dict) and isinstance(document.get("error"), dict):
                    code = document["error"].get("code")
            outcomes.append((request.line, request.title, (response.status_code, code)))
            expected = (request.expect_status, request.expect_code if request.expect_code else code)
            assert (response.status_code, code) == expected, (
                f"requests.http line {request.line} ({request.title or request.method + ' ' + request.url}): "
                f"expected {expected}, got {response.status_code} {response.text[:300]}"
            )
    finally:
        # Whatever happened, leave the emulator as the file found it: no armed fault, no latency.
        emulator = stack["acsEndpoint"]
        session.delete(f"{emulator}/_emulator/faults", verify=stack["caCertFile"], timeout=30)
        session.put(f"{emulator}/_emulator/config", json={"latencyMs": None}, verify=stack["caCertFile"], timeout=30)
    assert len(outcomes) == len(http_file.requests) >= 40


def test_the_files_recipe_for_another_user_makes_a_principal_the_stack_accepts(stack: dict):
    recipe = next(line.lstrip("# ").strip() for line in REQUESTS_FILE.read_text(encoding="utf-8").splitlines()
                  if line.lstrip("# ").startswith("python3 -c "))
    made = subprocess.run(shlex.split(recipe.replace("python3", sys.executable, 1)), capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()
    assert json.loads(base64.b64decode(made))["userId"] == "bob"
    headers = {"x-ms-client-principal": made}
    response = requests.post(f"{stack['functionHost']}/api/token", headers=headers, timeout=60)
    record_secrets(headers, response)
    assert response.status_code == 200, response.text
    assert response.json()["communicationUserId"]
