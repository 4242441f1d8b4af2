"""P5: the first token after a cold start. From the moment a process is started to the first
200 on POST /api/token for a new user (mapping and tombstone reads, createUserAndToken, mapping
insert) through a fresh function host, against a fresh process running bench.cold_bare, which
does the same calls with the same SDKs, credential and client configuration.

A third side, the floor (bench.floor_server --cold): the bare process's work behind the smallest
Python HTTP server (aiohttp.web imported, one handler, listening), reached the way the host is.
Host / floor is what the service and its host add to any Python HTTP server's cold start.

Each sample is a new process; host, bare and floor samples alternate in rounds whose order is
random, so background load on the shared cores hits every side alike. The host is the stack's own function
host code (devstack.funchost) with the stack's settings, started on a free port of its own and
stopped after its first answer; the client connects as soon as the port accepts.

Both sides carry the same probes (bench.probe), so the total splits into parts: interpreter
start, host start, app import, SDK imports, credential tokens, the ACS call, the table calls and
the rest.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from shared.settings import load_settings

from .measure import median, percentile
from .stack import ROOT, principal_header, settings_env

_PART_NAMES = ("interpreter", "host_start", "app_import", "wait_for_request", "sdk_import", "credential", "table", "acs", "other")


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


def _ports(stack: dict[str, Any]) -> dict[str, str]:
    return {str(urlsplit(stack["acsEndpoint"]).port): "acs", str(urlsplit(stack["tablesEndpoint"]).port): "table"}


def _wait_for_port(port: int, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as connection:
            if connection.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            raise RuntimeError(f"the function host exited with {process.returncode}")
        time.sleep(0.001)
    raise RuntimeError("the function host did not listen in time")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _first_answer(argv: list[str], env: dict[str, str], port: int, headers: dict[str, str], log_dir: Path) -> tuple[float, float, dict[str, Any]]:
    """Start a server process, POST /api/token as soon as its port accepts, and stop it after
    the first 200: (started, answered, its probe report)."""
    report = Path(tempfile.mkstemp(prefix="cold-", suffix=".json", dir=log_dir)[1])
    with open(log_dir / "cold-host.log", "ab") as log:
        started = time.time()
        process = subprocess.Popen(argv, cwd=ROOT, env={**env, "BENCH_PROBE_OUT": str(report)}, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(port, process, time.monotonic() + 60)
            response = requests.post(f"http://127.0.0.1:{port}/api/token", headers=headers, timeout=60)
            answered = time.time()
            if response.status_code != 200:
                raise RuntimeError(f"first token request answered {response.status_code}: {response.text[:200]}")
            deadline = time.monotonic() + 10
            while report.stat().st_size == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            _stop(process)
    data = json.loads(report.read_text())
    report.unlink()
    probe_events(data)
    return started, answered, data["marks"]


def host_sample(stack: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """One fresh function host: process start to the first 200 for a new user, and its parts."""
    port = free_port()
    user = f"bench-cold-{uuid.uuid4().hex[:12]}"
    argv = [sys.executable, "-m", "bench.host_process", "--app-dir", str(ROOT), "--host", "127.0.0.1",
            "--port", str(port), "--settings", stack["functionSettingsFile"], "--no-schedules"]
    started, answered, marks = _first_answer(argv, dict(os.environ), port, {"x-ms-client-principal": principal_header(user)}, log_dir)
    from . import probe

    request_parts = probe.parts(marks["first_request_received"], marks["first_response_ready"], _ports(stack))
    parts = {
        "interpreter_ms": _ms(started, marks["process_started"]),
        "host_start_ms": round(_ms(marks["process_started"], marks["listening"]) - _ms(marks["import_started"], marks["import_finished"]), 1),
        "app_import_ms": _ms(marks["import_started"], marks["import_finished"]),
        "wait_for_request_ms": _ms(marks["listening"], marks["first_request_received"]),
        "credential_ms": request_parts["credential_ms"],
        "table_ms": request_parts["table_ms"],
        "acs_ms": request_parts["acs_ms"],
        # the rest of the first request (SDK imports on first use, clients, handler) and the
        # answer's way back to the client
        "other_ms": round(request_parts["other_ms"] + _ms(marks["first_response_ready"], answered), 1),
    }
    return {"total_ms": _ms(started, answered), "parts": parts}


def floor_sample(stack: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """One fresh floor server (bench.floor_server --cold): the same work as the bare process
    behind one aiohttp.web handler; process start to its first 200, and its parts."""
    port = free_port()
    user = f"github|bench-cold-floor-{uuid.uuid4().hex[:12]}"
    argv = [sys.executable, "-m", "bench.floor_server", "--host", "127.0.0.1", "--port", str(port), "--cold", user]
    started, answered, marks = _first_answer(argv, _bare_env(stack), port, {}, log_dir)
    from . import probe

    work = probe.parts(marks["first_request_received"], marks["first_response_ready"], _ports(stack))
    server_import = _ms(marks["server_import_started"], marks["server_import_finished"])
    sdk_import = _ms(marks["import_started"], marks["import_finished"])
    parts = {
        "interpreter_ms": _ms(started, marks["process_started"]),
        # aiohttp.web's import and the server's setup until it listens, SDK imports excluded
        "server_start_ms": round(_ms(marks["process_started"], marks["listening"]) - sdk_import, 1),
        "sdk_import_ms": sdk_import,
        "wait_for_request_ms": _ms(marks["listening"], marks["first_request_received"]),
        "credential_ms": work["credential_ms"],
        "table_ms": work["table_ms"],
        "acs_ms": work["acs_ms"],
        "other_ms": round(work["other_ms"] + _ms(marks["first_response_ready"], answered), 1),
    }
    return {"total_ms": _ms(started, answered), "parts": parts, "server_import_ms": server_import}


def _bare_env(stack: dict[str, Any]) -> dict[str, str]:
    """The function app's settings as environment variables, with the service's dependency
    timeout (which its client configuration is built from)."""
    env = settings_env(stack)
    env["DEPENDENCY_TIMEOUT_SECONDS"] = str(load_settings(env).dependency_timeout_seconds)  # the service's value
    return env


def bare_sample(stack: dict[str, Any]) -> dict[str, Any]:
    """One fresh bare-SDK process: start to the mapping inserted, and its parts."""
    user = f"github|bench-cold-bare-{uuid.uuid4().hex[:12]}"
    started = time.time()
    env = _bare_env(stack)
    done = subprocess.run([sys.executable, "-m", "bench.cold_bare", user], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"bench.cold_bare failed: {done.stderr[-500:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    probe_events(data)
    marks = data["marks"]
    from . import probe

    work = probe.parts(marks["work_started"], marks["work_finished"], _ports(stack))
    parts = {
        "interpreter_ms": _ms(started, marks["process_started"]),
        "sdk_import_ms": _ms(marks["import_started"], marks["import_finished"]),
        "credential_ms": work["credential_ms"],
        "table_ms": work["table_ms"],
        "acs_ms": work["acs_ms"],
        "other_ms": round(work["other_ms"] + _ms(marks["import_finished"], marks["work_started"])
                          + _ms(marks["process_started"], marks["import_started"]), 1),
    }
    return {"total_ms": _ms(started, marks["work_finished"]), "parts": parts}


def probe_events(data: dict[str, Any]) -> None:
    """Load a child's probe events into this process's probe, for bench.probe.parts."""
    from . import probe

    probe.EVENTS[:] = [tuple(e) for e in data["events"]]


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 1)


def _median_parts(samples: list[dict[str, Any]]) -> dict[str, float]:
    names = samples[0]["parts"].keys()
    return {name: round(median([s["parts"][name] for s in samples]), 1) for name in names}


def run(stack: dict[str, Any], samples: int, log_dir: Path) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    host_sample(stack, log_dir)  # warm the OS file cache and the stack for every side
    bare_sample(stack)
    floor_sample(stack, log_dir)
    host: list[dict[str, Any]] = []
    bare: list[dict[str, Any]] = []
    floor: list[dict[str, Any]] = []
    for _ in range(samples):
        steps = [lambda: host.append(host_sample(stack, log_dir)), lambda: bare.append(bare_sample(stack)),
                 lambda: floor.append(floor_sample(stack, log_dir))]
        random.shuffle(steps)
        for step in steps:
            step()
    host_totals = [s["total_ms"] for s in host]
    bare_totals = [s["total_ms"] for s in bare]
    floor_totals = [s["total_ms"] for s in floor]
    host_parts = _median_parts(host)
    bare_parts = _median_parts(bare)
    largest = max(host_parts, key=lambda name: host_parts[name])
    return {
        "samples": samples,
        "host_median_ms": round(median(host_totals), 1),
        "host_p95_ms": round(percentile(host_totals, 95), 1),
        "bare_median_ms": round(median(bare_totals), 1),
        "bare_p95_ms": round(percentile(bare_totals, 95), 1),
        "ratio": round(median(host_totals) / median(bare_totals), 3),
        "host_parts_median_ms": host_parts,
        "bare_parts_median_ms": bare_parts,
        "largest_host_part": largest,
        "host_samples_ms": host_totals,
        "bare_samples_ms": bare_totals,
        # The floor: the bare work behind the smallest Python HTTP server (bench.floor_server).
        "floor_median_ms": round(median(floor_totals), 1),
        "floor_p95_ms": round(percentile(floor_totals, 95), 1),
        "host_floor_ratio": round(median(host_totals) / median(floor_totals), 3),
        "floor_bare_ratio": round(median(floor_totals) / median(bare_totals), 3),
        "floor_parts_median_ms": _median_parts(floor),
        "floor_server_import_median_ms": round(median([s["server_import_ms"] for s in floor]), 1),
        "floor_samples_ms": floor_totals,
    }
