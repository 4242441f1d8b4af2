"""The browser's path: through the Static Web Apps CLI (the platform's stand-in), signed in with its
auth cookie, to a function host. A forged principal header never gets through, providers the
deployment does not allow have no sign-in page, and a signed-in person the access policy refuses
gets the service's 403 JSON (code and sentence) in the page, not a platform page or a redirect."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from typing import Iterator

import pytest
import requests

from tests.conftest import ROOT, free_port
from tests.trust.conftest import error_code

SWA = ROOT / "node_modules" / ".bin" / "swa"
WEB = ROOT / "web" / "dist"


def _cookie(user_id: str, roles: list[str], provider: str = "github") -> dict[str, str]:
    """The SWA CLI's sign-in cookie: the client principal it forwards as x-ms-client-principal."""
    principal = {"identityProvider": provider, "userId": user_id, "userDetails": user_id, "userRoles": roles, "claims": []}
    return {"StaticWebAppsAuthCookie": base64.b64encode(json.dumps(principal).encode()).decode()}


def _forged(user_id: str) -> dict[str, str]:
    principal = {"identityProvider": "github", "userId": user_id, "userDetails": "x", "userRoles": ["anonymous", "authenticated", "admin"]}
    return {"x-ms-client-principal": base64.b64encode(json.dumps(principal).encode()).decode()}


class SwaCli:
    """A Static Web Apps CLI in front of a given function host."""

    def __init__(self, api_base: str, log_dir) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        log = open(log_dir / f"swa-trust-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [str(SWA), "start", str(WEB), "--swa-config-location", str(WEB), "--api-devserver-url", api_base,
             "--host", "127.0.0.1", "--port", str(self.port), "--open", "false"],
            cwd=ROOT, env={**os.environ, "SWA_CLI_DISABLE_TELEMETRY": "1"}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the SWA CLI exited")
            try:
                requests.get(f"{self.base}/signin.html", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.5)
        raise RuntimeError("the SWA CLI did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def closed_swa(start_host) -> Iterator[SwaCli]:
    """The deployment's closed default policy, behind the SWA CLI."""
    _, host = start_host({"ACCESS_ALLOWED_PROVIDERS": "", "ACCESS_REQUIRED_ROLES": ""}, "behind-swa")
    swa = SwaCli(host.base, host.log.parent)
    yield swa
    swa.stop()


def test_a_forged_principal_without_sign_in_never_reaches_the_api(closed_swa: SwaCli):
    response = requests.post(f"{closed_swa.base}/api/token", headers=_forged("victim"), allow_redirects=False, timeout=30)
    assert response.status_code == 302
    assert response.headers["Location"] == "/signin.html"


def test_a_signed_in_person_without_the_role_gets_the_services_403_in_the_page(closed_swa: SwaCli):
    response = requests.post(f"{closed_swa.base}/api/token", cookies=_cookie(f"u-{uuid.uuid4().hex}", ["anonymous", "authenticated"]),
                             allow_redirects=False, timeout=30)
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("application/json")
    assert error_code(response) == "RoleRequired"
    assert "invite" in response.json()["error"]["message"]


def test_an_invited_member_gets_a_token_through_the_platform(closed_swa: SwaCli):
    cookies = _cookie(f"u-{uuid.uuid4().hex}", ["anonymous", "authenticated", "member"])
    response = requests.post(f"{closed_swa.base}/api/token", cookies=cookies, timeout=30)
    assert response.status_code == 200, response.text


def test_a_forged_principal_beside_a_sign_in_is_replaced_by_the_signed_in_user(closed_swa: SwaCli):
    user_id = f"u-{uuid.uuid4().hex}"
    cookies = _cookie(user_id, ["anonymous", "authenticated", "member"])
    assert requests.post(f"{closed_swa.base}/api/token", cookies=cookies, timeout=30).status_code == 200
    response = requests.get(f"{closed_swa.base}/api/identity", cookies=cookies, headers=_forged("victim"), timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["appUserId"] == f"github|{user_id}"


@pytest.mark.parametrize("provider", ["twitter", "google", "facebook", "apple"])
def test_providers_the_deployment_does_not_allow_have_no_sign_in(closed_swa: SwaCli, provider: str):
    response = requests.get(f"{closed_swa.base}/.auth/login/{provider}", allow_redirects=False, timeout=30)
    assert response.status_code == 404
