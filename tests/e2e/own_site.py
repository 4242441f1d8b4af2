"""A static web app of a test's own: the built page (web/dist) served by the SWA CLI in front of a
function host started with other settings (tests.conftest.FunctionHost), on the running stack's
ACS emulator and Azurite. Browser tests use it when they need settings the shared stack does not
have (guest access off, no token reuse, a small guest budget)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

from tests.conftest import ROOT, FunctionHost, free_port, run_log_dir

SWA = ROOT / "node_modules" / ".bin" / "swa"
WEB_DIST = ROOT / "web" / "dist"
START_SECONDS = 120


@contextmanager
def static_web_app(stack: dict, overrides: dict[str, str], name: str) -> Iterator[str]:
    """Yields the site's URL; stops the CLI and the host afterwards. The SWA CLI answers nothing
    until the API it fronts does, so the host is started (and ready) first."""
    if not (WEB_DIST / "index.html").exists():
        raise RuntimeError("web/dist is missing: run `node devstack/build_web.mjs` (make test does)")
    host = FunctionHost(stack, overrides, name)
    try:
        port = free_port()
        site = f"http://127.0.0.1:{port}"
        log: Path = run_log_dir(stack) / f"swa-{name}-{port}.log"
        with open(log, "wb") as out:
            cli = subprocess.Popen(
                [str(SWA), "start", str(WEB_DIST), "--swa-config-location", str(WEB_DIST),
                 "--api-devserver-url", host.base, "--host", "127.0.0.1", "--port", str(port), "--open", "false"],
                cwd=ROOT, env={**os.environ, "SWA_CLI_DISABLE_TELEMETRY": "1"}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it stops its children too
            )
        try:
            _wait_for(site, cli, log)
            yield site
        finally:
            _stop(cli)
    finally:
        host.stop()


def _wait_for(site: str, cli: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if cli.poll() is not None:
            raise RuntimeError(f"the SWA CLI exited with {cli.returncode}; see {log}")
        try:
            if requests.get(f"{site}/signin.html", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    _stop(cli)
    raise RuntimeError(f"the SWA CLI did not answer within {START_SECONDS} s; see {log}")


def _stop(cli: subprocess.Popen) -> None:
    if cli.poll() is None:
        try:
            os.killpg(cli.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    try:
        cli.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait(10)
