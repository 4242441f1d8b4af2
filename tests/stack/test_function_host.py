"""The local Functions host serves a v2-model app the way the Functions host does.

Each test talks to a real host process (python -m devstack.funchost) running the
sample app in tests/stack/sample_app over loopback HTTP.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest
import requests

from devstack.funchost.ncrontab import ScheduleError, parse_schedule

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"
STARTUP_SECONDS = 30
# How long to wait for something the host does in the background (a timer run).
BACKGROUND_SECONDS = 15

pytestmark = pytest.mark.timeout(180)


@dataclass
class RunningHost:
    base_url: str
    log_path: Path
    process: subprocess.Popen

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _copy_sample_app(destination: Path, settings: dict[str, str]) -> Path:
    """A private copy, so local.settings.json and bytecode never land in the source tree."""
    app_dir = destination / "app"
    shutil.copytree(SAMPLE_APP, app_dir, ignore=shutil.ignore_patterns("__pycache__", "local.settings.json"))
    (app_dir / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": settings}))
    return app_dir


def _launch(app_dir: Path, log_path: Path, env_overrides: dict[str, str], *extra_args: str) -> RunningHost:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **env_overrides}
    log_file = log_path.open("wb")
    command = [sys.executable, "-m", "devstack.funchost", "--app-dir", str(app_dir), "--port", str(port), *extra_args]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    return RunningHost(f"http://127.0.0.1:{port}", log_path, process)


def _wait_until_ready(host: RunningHost) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            pytest.fail(f"host exited with {host.process.returncode}:\n{host.log_text()}")
        try:
            status = requests.get(host.url("/admin/host/status"), timeout=2)
            if status.status_code == 200 and status.json()["state"] == "Running":
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"host not ready within {STARTUP_SECONDS}s:\n{host.log_text()}")


def _stop(host: RunningHost) -> Optional[int]:
    if host.process.poll() is None:
        host.process.send_signal(signal.SIGTERM)
        try:
            host.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            host.process.kill()
            host.process.wait()
    return host.process.returncode


@contextmanager
def _start_host(tmp: Path, settings: dict[str, str], env: dict[str, str], *args: str) -> Iterator[RunningHost]:
    app_dir = _copy_sample_app(tmp, settings)
    host = _launch(app_dir, tmp / "host.log", env, *args)
    try:
        _wait_until_ready(host)
        yield host
    finally:
        _stop(host)


def _wait_for_lines(path: Path, count: int) -> list[dict]:
    deadline = time.monotonic() + BACKGROUND_SECONDS
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if len(lines) >= count:
                return lines
        time.sleep(0.1)
    pytest.fail(f"{path} did not get {count} line(s) within {BACKGROUND_SECONDS}s")


@pytest.fixture(scope="module")
def marker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marker") / "timer-runs.jsonl"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, marker_path: Path) -> Iterator[RunningHost]:
    """The sample app with schedules off: timers run only when asked through the admin API."""
    settings = {
        "SAMPLE_GREETING": "from-local-settings",
        "SAMPLE_OVERRIDDEN": "from-local-settings",
        "SAMPLE_TIMER_SCHEDULE": "0 0 0 1 1 *",
    }
    env = {"SAMPLE_OVERRIDDEN": "from-environment", "SAMPLE_TIMER_MARKER": str(marker_path)}
    with _start_host(tmp_path_factory.mktemp("host"), settings, env, "--no-schedules") as running:
        yield running


# -- routes --------------------------------------------------------------------


def test_route_and_optional_parameters_reach_the_function(host: RunningHost) -> None:
    with_optional = requests.get(host.url("/sample/hello/ada/morning"), timeout=10)
    without_optional = requests.get(host.url("/sample/hello/ada"), timeout=10)

    assert with_optional.json()["route_params"] == {"name": "ada", "greeting": "morning"}
    assert without_optional.json()["route_params"] == {"name": "ada"}


def test_route_literals_match_whatever_their_case(host: RunningHost) -> None:
    response = requests.get(host.url("/SAMPLE/Items/42"), timeout=10)

    assert response.status_code == 200
    assert response.json() == {"function": "item_by_id", "route_params": {"id": "42"}}


def test_constraints_decide_which_function_serves_a_path(host: RunningHost) -> None:
    literal = requests.get(host.url("/sample/items/new"), timeout=10)
    not_an_int = requests.get(host.url("/sample/items/abc"), timeout=10)
    guid = str(uuid.uuid4())
    a_guid = requests.get(host.url(f"/sample/things/{guid}"), timeout=10)
    not_a_guid = requests.get(host.url("/sample/things/123"), timeout=10)

    assert literal.json() == {"function": "new_item"}
    assert not_an_int.status_code == 404
    assert a_guid.json()["route_params"] == {"id": guid}
    assert not_a_guid.status_code == 404


def test_catch_all_parameter_receives_the_rest_of_the_path(host: RunningHost) -> None:
    response = requests.get(host.url("/sample/files/docs/2024/report.pdf"), timeout=10)

    assert response.json()["route_params"] == {"path": "docs/2024/report.pdf"}


def test_methods_not_listed_for_a_route_are_not_found(host: RunningHost) -> None:
    allowed = requests.put(host.url("/sample/echo"), data=b"x", timeout=10)
    not_listed = requests.get(host.url("/sample/echo"), timeout=10)

    assert allowed.status_code == 200
    assert not_listed.status_code == 404


def test_routes_are_served_under_the_host_json_prefix_only(host: RunningHost) -> None:
    assert requests.get(host.url("/sample/bp/ping"), timeout=10).status_code == 200
    assert requests.get(host.url("/api/bp/ping"), timeout=10).status_code == 404
    assert requests.get(host.url("/bp/ping"), timeout=10).status_code == 404


def test_function_routes_starting_with_admin_are_refused_like_the_host_does(host: RunningHost) -> None:
    response = requests.get(host.url("/sample/administration/report"), timeout=10)

    assert response.status_code == 404
    assert "The 'administration_report' function is in error" in host.log_text()


def test_functions_from_a_registered_blueprint_are_served(host: RunningHost) -> None:
    assert requests.get(host.url("/sample/bp/ping"), timeout=10).json() == {"from": "blueprint"}


# -- requests and responses ----------------------------------------------------------


def test_query_headers_and_body_reach_the_function(host: RunningHost) -> None:
    response = requests.post(
        host.url("/sample/echo?colour=blue&size=9"),
        headers={"X-Sample": "header-value"},
        data=b"the request body",
        timeout=10,
    )

    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["params"] == {"colour": "blue", "size": "9"}
    assert echoed["x_sample"] == "header-value"
    assert echoed["body_prefix"] == "the request body"
    assert echoed["url"] == host.url("/sample/echo?colour=blue&size=9")


def test_large_request_body_reaches_the_function_whole(host: RunningHost) -> None:
    body = b"a" * (20 * 1024 * 1024)

    response = requests.post(host.url("/sample/echo"), data=body, timeout=60)

    assert response.json()["body_length"] == len(body)


def test_status_headers_cookies_and_body_come_back(host: RunningHost) -> None:
    response = requests.get(host.url("/sample/respond"), timeout=10)

    assert response.status_code == 201
    assert response.headers["X-Sample-Reply"] == "yes"
    assert response.headers["Content-Type"] == "application/json"
    assert response.raw.headers.getlist("Set-Cookie") == ["first=1; Path=/", "second=2; Path=/"]
    assert response.json() == {"created": True}


def test_returning_none_gives_204_and_returning_text_gives_plain_text(host: RunningHost) -> None:
    nothing = requests.get(host.url("/sample/nothing"), timeout=10)
    text = requests.get(host.url("/sample/plain"), timeout=10)

    assert (nothing.status_code, nothing.content) == (204, b"")
    assert (text.status_code, text.text) == (200, "just text")
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_unhandled_exception_is_500_with_the_traceback_only_in_the_log(host: RunningHost) -> None:
    response = requests.get(host.url("/sample/boom"), timeout=10)

    assert response.status_code == 500
    assert response.content == b""
    assert "RuntimeError: sample failure detail" in host.log_text()
    assert "Executed 'Functions.boom' (Failed" in host.log_text()


def test_sync_function_runs_off_the_event_loop_with_its_context(host: RunningHost) -> None:
    response = requests.get(host.url("/sample/whoami"), timeout=10)

    info = response.json()
    assert info["function_name"] == "whoami"
    assert uuid.UUID(info["invocation_id"])
    assert info["on_main_thread"] is False


# -- the app's environment ------------------------------------------------------------


def test_local_settings_become_environment_but_the_environment_wins(host: RunningHost) -> None:
    response = requests.get(host.url("/sample/settings"), timeout=10)

    assert response.json() == {
        "SAMPLE_GREETING": "from-local-settings",
        "SAMPLE_OVERRIDDEN": "from-environment",
    }


def test_app_imports_packages_from_its_own_folder(host: RunningHost) -> None:
    assert requests.get(host.url("/sample/origin"), timeout=10).json() == {"origin": "sample_helpers"}


# -- concurrency --------------------------------------------------------------------------


def _rendezvous(host: RunningHost, kind: str, count: int) -> list[bool]:
    """Send `count` requests that each wait until all `count` are inside the app at once."""
    url = host.url(f"/sample/rendezvous/{kind}/{count}?group={uuid.uuid4()}")
    with ThreadPoolExecutor(max_workers=count) as pool:
        responses = list(pool.map(lambda _: requests.get(url, timeout=30), range(count)))
    return [r.json()["met"] for r in responses]


def test_concurrent_async_invocations_are_all_in_flight_together(host: RunningHost) -> None:
    assert _rendezvous(host, "async", 16) == [True] * 16


def test_concurrent_sync_invocations_run_in_parallel_threads(host: RunningHost) -> None:
    assert _rendezvous(host, "sync", 4) == [True] * 4


# -- timers and the admin API -----------------------------------------------------------


def test_timer_runs_with_a_timer_request_when_invoked_through_the_admin_api(
    host: RunningHost, marker_path: Path
) -> None:
    before = len(marker_path.read_text().splitlines()) if marker_path.exists() else 0

    response = requests.post(host.url("/admin/functions/tick"), json={"input": ""}, timeout=10)

    assert response.status_code == 202
    runs = _wait_for_lines(marker_path, before + 1)
    assert runs[-1] == {"type": "TimerRequest", "past_due": False}
    # The host logs the outcome after the function returns, so the marker can come first: wait for
    # this invocation's outcome line (an observed event, by its id), then require Succeeded.
    invoked = re.findall(r"Executing 'Functions\.tick' \(Reason='This function was programmatically called[^)]*Id=([0-9a-f-]+)\)",
                         host.log_text())
    assert invoked, "the host logged no programmatic invocation of tick"
    outcome = re.compile(rf"Executed 'Functions\.tick' \((\w+), Id={invoked[-1]}")
    deadline = time.monotonic() + BACKGROUND_SECONDS
    while not outcome.search(host.log_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    found = outcome.search(host.log_text())
    assert found and found.group(1) == "Succeeded"


def test_admin_invoke_of_an_unknown_function_is_not_found(host: RunningHost) -> None:
    response = requests.post(host.url("/admin/functions/no_such_function"), json={"input": ""}, timeout=10)

    assert response.status_code == 404


def test_host_status_reports_running(host: RunningHost) -> None:
    status = requests.get(host.url("/admin/host/status"), timeout=10).json()

    assert status["state"] == "Running"
    assert "tick" in status["functions"]


def test_timer_runs_on_its_schedule(tmp_path: Path) -> None:
    marker = tmp_path / "scheduled-runs.jsonl"
    settings = {"SAMPLE_TIMER_SCHEDULE": "* * * * * *"}  # every second

    with _start_host(tmp_path, settings, {"SAMPLE_TIMER_MARKER": str(marker)}):
        runs = _wait_for_lines(marker, 2)

    assert all(run == {"type": "TimerRequest", "past_due": False} for run in runs)


def test_invalid_timer_schedule_is_reported_and_the_host_keeps_serving(tmp_path: Path) -> None:
    settings = {"SAMPLE_TIMER_SCHEDULE": "every tuesday"}

    with _start_host(tmp_path, settings, {"SAMPLE_TIMER_MARKER": str(tmp_path / "unused")}) as running:
        assert requests.get(running.url("/sample/bp/ping"), timeout=10).status_code == 200
        assert "The 'tick' function is in error: invalid timer schedule" in running.log_text()


# -- logging and lifecycle -----------------------------------------------------------------


def test_log_has_app_lines_and_one_access_line_per_request_but_no_headers_or_bodies(host: RunningHost) -> None:
    secret_header, secret_body = f"header-{uuid.uuid4()}", f"body-{uuid.uuid4()}"
    path = f"/sample/hello/{uuid.uuid4().hex}"
    requests.get(host.url(path + "?q=1"), headers={"X-Secret": secret_header}, data=secret_body, timeout=10)

    log = host.log_text()
    assert "INFO sample: hello function ran" in log
    access_lines = [line for line in log.splitlines() if f"GET {path} 200" in line]
    assert len(access_lines) == 1
    assert "q=1" not in access_lines[0]
    assert secret_header not in log
    assert secret_body not in log


def test_app_that_fails_to_import_stops_the_host_with_the_reason(tmp_path: Path) -> None:
    app_dir = tmp_path / "broken"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text("import azure.functions as func\nraise ImportError('no such thing')\n")

    host = _launch(app_dir, tmp_path / "host.log", {})
    try:
        exit_code = host.process.wait(timeout=STARTUP_SECONDS)
    finally:
        _stop(host)

    assert exit_code != 0
    assert "The function app could not be loaded" in host.log_text()
    assert "no such thing" in host.log_text()


def test_host_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with _start_host(tmp_path, {"SAMPLE_TIMER_SCHEDULE": "0 0 0 1 1 *"}, {}, "--no-schedules") as running:
        exit_code = _stop(running)

    assert exit_code == 0
    assert "Host stopped" in running.log_text()


# -- NCRONTAB schedules ---------------------------------------------------------------------


def _utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.timezone.utc)


def test_weekday_schedule_skips_the_weekend() -> None:
    schedule = parse_schedule("0 30 9 * * Mon-Fri")

    # Friday 2024-03-08 10:00 -> next is Monday 2024-03-11 09:30.
    assert schedule.next_after(_utc(2024, 3, 8, 10, 0, 0)) == _utc(2024, 3, 11, 9, 30, 0)


def test_step_and_list_fields_fire_on_each_listed_value() -> None:
    schedule = parse_schedule("*/15 0 8,20 * * *")

    assert schedule.next_after(_utc(2024, 1, 1, 8, 0, 44)) == _utc(2024, 1, 1, 8, 0, 45)
    assert schedule.next_after(_utc(2024, 1, 1, 8, 0, 45)) == _utc(2024, 1, 1, 20, 0, 0)


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    schedule = parse_schedule("0 0 0 13 * FRI")  # Friday the 13th

    assert schedule.next_after(_utc(2024, 1, 1)) == _utc(2024, 9, 13)


def test_timespan_schedule_fires_every_interval() -> None:
    schedule = parse_schedule("00:05:00")

    assert schedule.next_after(_utc(2024, 1, 1, 12, 0, 0)) == _utc(2024, 1, 1, 12, 5, 0)


@pytest.mark.parametrize("expression", ["* * * * *", "61 * * * * *", "0 0 0 30 2 *", "0 0 0 * * Funday"])
def test_invalid_schedules_are_rejected(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(expression)
