"""P6: throughput of one instance. 256 concurrent callers over keep-alive connections send token
requests back to back to a fresh function host (the stack's host code and settings, on a port of
its own), against 256 concurrent callers of the bare aio SDK's get_token with the service's
credential and client configuration. Every request on both sides is one issueAccessToken at the
emulator (20 ms). Both load generators are processes of their own (bench.load_worker).

Measured in rounds of one window per side, in random order, so background load on the 2 shared
cores hits both sides alike: requests per second finished inside the windows (the ratio is the
median of the rounds' ratios), p99 latency, and CPU per request (the host process's, the SDK
process's, and the host side's load generator's).

Where the processes run: the instance's process (the function host, or the bare SDK process in
its place) is pinned to CPU 0, and what stands for the rest of the world (the ACS emulator, the
host side's load generator) to CPU 1, so that in both windows the instance has one core of its
own, as a Python worker has, and ACS and the callers do not take CPU from it.
Afterwards, one more host window runs under py-spy (sampling from outside the process,
non-blocking) for the profile: where the host's CPU goes, by function and by package; and one
with the garbage collector's CPU time counted (bench.host_process), kept out of the measured
windows because counting costs a little CPU itself.

A third side runs in the same rounds: a second fresh host with the app's garbage-collector
settings undone (GC_TUNING: shared/garbage_collection.py's freeze and youngest-generation
threshold reverted to CPython's defaults), so what those settings buy is measured beside the rest.

A fourth, the floor: the bare SDK's get_token behind the smallest HTTP server a Python process
can have (bench.floor_server: one aiohttp.web handler, a dictionary lookup of the caller's
identity, no service logic), pinned and loaded exactly as the host is (the same load generator
sending the same requests). Host / floor is what the service's own code costs; floor / SDK is
what any Python HTTP front costs on the instance's core.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil

from shared.settings import load_settings

from .cold_first_token import free_port
from .measure import FunctionHostClient, median, percentile
from .stack import ROOT, Emulator, calls, new_users, process_listening_on, settings_env

CONCURRENCY = 256
#: The third side's garbage-collector settings (bench.host_process): the same host code with the
#: app's settings (shared/garbage_collection.py) undone after its import: nothing frozen, and
#: CPython's default youngest-generation threshold of 700.
GC_TUNING = "unfreeze,threshold=700"
USERS_PER_CALLER = 2  # each user about once a second: under the 60-a-minute limit, and never two at once


class Worker:
    """A bench.load_worker process driven one window at a time."""

    def __init__(self, side: str, target: str, users: list[str], *extra: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bench.load_worker", side, target, str(CONCURRENCY), *extra],
                                        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._send(json.dumps(users))

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def run(self, seconds: float, command: str = "run") -> dict[str, Any]:
        self._send(f"{command} {seconds}")
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"load worker exited with {self.process.wait()}")
        return json.loads(line)

    def tls(self) -> dict[str, int]:
        self._send("tls")
        assert self.process.stdout is not None
        return json.loads(self.process.stdout.readline())["tls"]

    def close(self) -> None:
        if self.process.poll() is None:
            self._send("quit")
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _pin(process: psutil.Process | int, cpu: int) -> list[int] | None:
    """Pin a process to one CPU (when there are two); returns its former affinity."""
    if (psutil.cpu_count() or 1) < 2:
        return None
    process = process if isinstance(process, psutil.Process) else psutil.Process(process)
    before = process.cpu_affinity()
    process.cpu_affinity([cpu])
    return before


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def start_host(stack: dict[str, Any], log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """A fresh function host (devstack.funchost through bench.host_process, with the stack's
    settings) on a free port."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.host_process", "--app-dir", str(ROOT), "--host", "127.0.0.1", "--port", str(port),
            "--settings", stack["functionSettingsFile"], "--no-schedules", "--log-level", "WARNING"]
    out = open(log, "ab")
    process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(f"{url}/admin/host/status", timeout=2).read()
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the function host did not start; see {log}")
            time.sleep(0.1)


def start_floor(stack: dict[str, Any], users: dict[str, str], log_dir: Path) -> tuple[subprocess.Popen, str]:
    """The floor server (bench.floor_server) on a free port, serving ``users`` (principal header ->
    communicationUserId) with the service's credential and client configuration."""
    port = free_port()
    users_file = log_dir / "p6-floor-users.json"
    users_file.write_text(json.dumps(users))
    env = settings_env(stack)
    env["DEPENDENCY_TIMEOUT_SECONDS"] = str(load_settings(env).dependency_timeout_seconds)  # the service's value
    out = open(log_dir / "p6-floor.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "bench.floor_server", "--port", str(port), "--users", str(users_file)],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    import socket

    while True:
        with socket.socket() as connection:
            if connection.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the floor server did not start; see {log_dir / 'p6-floor.log'}")
        time.sleep(0.1)


def stop_host(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def sign_up(url: str, users: list, concurrency: int = 16) -> list[str]:
    """Each user's first token through the host: identities created, mappings in its memory.
    Not measured; a 503 (Azurite slow on the busy machine) is retried after its Retry-After,
    as a browser's client would."""
    identities: list[str] = [""] * len(users)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        host = FunctionHostClient(session, url)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with semaphore:
                for attempt in range(5):
                    status, body = await host.token(users[i])
                    if status != 503:
                        break
                    await asyncio.sleep(1 + attempt)
                if status != 200:
                    raise RuntimeError(f"sign-up token request answered {status}: {body}")
                identities[i] = body["communicationUserId"]

        await asyncio.gather(*(one(i) for i in range(len(users))))
    return identities


# -- profile ---------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _package(path: str) -> str:
    """A frame's file as the package it belongs to (site-packages' top two levels, the repo's
    folders, or the standard library)."""
    path = path.replace("\\", "/")
    if "site-packages/" in path:
        parts = path.split("site-packages/", 1)[1].split("/")
        if parts[0] == "azure" and len(parts) > 2:
            return ".".join(parts[:3]).removesuffix(".py") if parts[1] in ("core", "communication") else ".".join(parts[:2])
        return parts[0].removesuffix(".py")
    root = str(ROOT) + "/"
    if path.startswith(root):
        relative = path[len(root):]
        return relative.split("/")[0] + ("/" + relative.split("/")[1] if relative.startswith("devstack/") else "")
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return "stdlib:" + rest.split("/")[0].removesuffix(".py")
    return path or "?"


def summarise_profile(raw: str, top: int = 15) -> dict[str, Any]:
    """py-spy's collapsed stacks -> the share of samples per function (self and inclusive) and
    per package (self)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    service: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame.strip())
            if match:
                file = match["file"]
                short = file.split("site-packages/", 1)[-1].replace(str(ROOT) + "/", "")
                frames.append((f"{match['function']} ({short})", _package(file)))
        frames = [f for f in frames if not f[0].startswith("<module>") or f is frames[-1]]
        if not frames:
            continue
        own[frames[-1][0]] += count
        packages[frames[-1][1]] += count
        for name in {name for name, _ in frames}:
            inclusive[name] += count
        for name in {name for name, package in frames if package == "shared"}:
            service[name] += count
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "self_top": [(name, share(n)) for name, n in own.most_common(top)],
        "inclusive_top": [(name, share(n)) for name, n in inclusive.most_common(top + 10)],
        "packages_self": [(name, share(n)) for name, n in packages.most_common(top)],
        "service_inclusive": [(name, share(n)) for name, n in service.most_common(10)],
    }


def _py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def gc_windows(host: psutil.Process, host_worker: Worker, sdk_worker: Worker, seconds: float, report: Path) -> dict[str, Any]:
    """One more window per side with the garbage collector's CPU time counted: in the host
    (bench.host_process, by signal) and in the SDK process."""
    report.unlink(missing_ok=True)
    host.send_signal(signal.SIGUSR2)
    host_result = host_worker.run(seconds)
    host.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while (not report.exists() or report.stat().st_size == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    sdk_result = sdk_worker.run(seconds, "gc")
    return {"host": {**json.loads(report.read_text()), "requests": host_result["requests"]},
            "sdk": {**sdk_result["gc"], "requests": sdk_result["requests"]}}


def host_tls(host: psutil.Process, report: Path) -> dict[str, int]:
    """The TLS connections the host opened since it started (bench.tls_meter), read through an
    empty garbage-collector count (two SIGUSR2 at once)."""
    report.unlink(missing_ok=True)
    host.send_signal(signal.SIGUSR2)
    time.sleep(0.05)
    host.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while (not report.exists() or report.stat().st_size == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    counts = json.loads(report.read_text())["tls_connections_since_start"]
    report.unlink()
    return counts


def profile_window(host: psutil.Process, worker: Worker, seconds: float, out: Path) -> dict[str, Any]:
    spy = _py_spy()
    if spy is None:
        return {"error": "py-spy is not installed (pip install -r requirements-dev.txt)"}
    recorder = subprocess.Popen([spy, "record", "--pid", str(host.pid), "--duration", str(int(seconds) + 1), "--rate", "200",
                                 "--nonblocking", "--full-filenames", "--format", "raw", "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # let it attach before the load starts
    result = worker.run(seconds)
    _, errors = recorder.communicate(timeout=60)
    if recorder.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {errors.strip()[-300:]}"}
    summary = summarise_profile(out.read_text())
    summary["requests"] = result["requests"]
    return summary


# -- the figure -----------------------------------------------------------------------------

async def run(stack: dict[str, Any], emulator: Emulator, rounds: int, window_seconds: float, profile_seconds: float,
              log_dir: Path) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    gc_report = log_dir / "p6-gc.json"
    gc_report.unlink(missing_ok=True)
    process, url = start_host(stack, log_dir / "p6-host.log", {"BENCH_GC_OUT": str(gc_report)})
    tuned_process, tuned_url = start_host(stack, log_dir / "p6-host-gc-tuned.log", {"BENCH_GC_TUNING": GC_TUNING})
    workers: list[Worker] = []
    emulator_affinity: list[int] | None = None
    floor_process: subprocess.Popen | None = None
    try:
        host_process = psutil.Process(process.pid)
        tuned_host = psutil.Process(tuned_process.pid)
        users = new_users(CONCURRENCY * USERS_PER_CALLER, "p6")
        identities = await sign_up(url, users)
        await sign_up(tuned_url, users)  # the same users: the second host finds their mappings
        principals = [u.headers["x-ms-client-principal"] for u in users]
        host_worker = Worker("host", url, principals)
        tuned_worker = Worker("host", tuned_url, principals)
        timeout = load_settings(settings_env(stack)).dependency_timeout_seconds
        sdk_worker = Worker("sdk", stack["acsEndpoint"], identities, str(timeout))
        floor_process, floor_url = start_floor(stack, dict(zip(principals, identities)), log_dir)
        floor = psutil.Process(floor_process.pid)
        floor_worker = Worker("host", floor_url, principals)
        workers = [host_worker, sdk_worker, tuned_worker, floor_worker]
        emulator_process = process_listening_on(urlsplit(stack["acsEndpoint"]).port)
        emulator_affinity = _pin(emulator_process, 1)
        for instance in (host_process, tuned_host, sdk_worker.process.pid, floor):
            _pin(instance, 0)
        for generator in (host_worker, tuned_worker, floor_worker):
            _pin(generator.process.pid, 1)
        for worker in workers:  # connections, credential tokens, the host's first-use work
            await asyncio.to_thread(worker.run, 1.0)

        host_windows: list[dict[str, Any]] = []
        sdk_windows: list[dict[str, Any]] = []
        tuned_windows: list[dict[str, Any]] = []
        floor_windows: list[dict[str, Any]] = []
        host_cpu = tuned_cpu = floor_cpu = 0.0
        emulator_cpu = {"host": 0.0, "sdk": 0.0, "tuned": 0.0, "floor": 0.0}
        tls_before = {"host": host_tls(host_process, gc_report), "sdk": sdk_worker.tls()}
        before = await emulator.stats()
        for _ in range(rounds):
            sides = ["host", "sdk", "tuned", "floor"]
            random.shuffle(sides)
            for side in sides:
                emulator_before = _cpu(emulator_process)
                if side == "host":
                    cpu = _cpu(host_process)
                    host_windows.append(await asyncio.to_thread(host_worker.run, window_seconds))
                    host_cpu += _cpu(host_process) - cpu
                elif side == "tuned":
                    cpu = _cpu(tuned_host)
                    tuned_windows.append(await asyncio.to_thread(tuned_worker.run, window_seconds))
                    tuned_cpu += _cpu(tuned_host) - cpu
                elif side == "floor":
                    cpu = _cpu(floor)
                    floor_windows.append(await asyncio.to_thread(floor_worker.run, window_seconds))
                    floor_cpu += _cpu(floor) - cpu
                else:
                    sdk_windows.append(await asyncio.to_thread(sdk_worker.run, window_seconds))
                emulator_cpu[side] += _cpu(emulator_process) - emulator_before
        after = await emulator.stats()
        rss = host_process.memory_info().rss
        profile = await asyncio.to_thread(profile_window, host_process, host_worker, profile_seconds, log_dir / "p6-profile.txt")
        gc_stats = await asyncio.to_thread(gc_windows, host_process, host_worker, sdk_worker, profile_seconds, gc_report)
        # TLS connections from before the rounds to the end of the last window, and the requests served meanwhile
        tls_after = {"host": gc_stats["host"]["tls_connections_since_start"], "sdk": gc_stats["sdk"]["tls_connections_since_start"]}
        tls_requests = {"host": sum(w["requests"] for w in host_windows) + profile.get("requests", 0) + gc_stats["host"]["requests"],
                        "sdk": sum(w["requests"] for w in sdk_windows) + gc_stats["sdk"]["requests"]}
    finally:
        if emulator_affinity is not None:
            emulator_process.cpu_affinity(emulator_affinity)
        for worker in workers:
            worker.close()
        stop_host(process)
        stop_host(tuned_process)
        if floor_process is not None:
            stop_host(floor_process)

    def side(windows: list[dict[str, Any]]) -> dict[str, Any]:
        latencies = [x for w in windows for x in w["latencies_ms"]]
        statuses: collections.Counter[str] = collections.Counter()
        for w in windows:
            statuses.update(w["statuses"])
        return {
            "requests_per_second": round(sum(w["requests_in_window"] for w in windows) / sum(w["seconds"] for w in windows), 1),
            "per_window_rps": [round(w["requests_in_window"] / w["seconds"], 1) for w in windows],
            "requests": sum(w["requests"] for w in windows),
            "statuses": dict(statuses),
            "latency_p50_ms": round(median(latencies), 2),
            "latency_p99_ms": round(percentile(latencies, 99), 2),
            "client_cpu_ms_per_request": round(1000 * sum(w["cpu_seconds"] for w in windows) / max(1, sum(w["requests"] for w in windows)), 3),
        }

    host, sdk = side(host_windows), side(sdk_windows)
    round_ratios = [h["requests_in_window"] / max(1, s["requests_in_window"]) for h, s in zip(host_windows, sdk_windows)]
    host["host_cpu_ms_per_request"] = round(1000 * host_cpu / max(1, host["requests"]), 3)
    sdk["emulator_cpu_ms_per_request"] = round(1000 * emulator_cpu["sdk"] / max(1, sdk["requests"]), 3)
    host["emulator_cpu_ms_per_request"] = round(1000 * emulator_cpu["host"] / max(1, host["requests"]), 3)
    tuned = side(tuned_windows)
    tuned["host_cpu_ms_per_request"] = round(1000 * tuned_cpu / max(1, tuned["requests"]), 3)
    tuned_ratios = [t["requests_in_window"] / max(1, s["requests_in_window"]) for t, s in zip(tuned_windows, sdk_windows)]
    floor_side = side(floor_windows)
    floor_side["server_cpu_ms_per_request"] = round(1000 * floor_cpu / max(1, floor_side["requests"]), 3)
    floor_side["emulator_cpu_ms_per_request"] = round(1000 * emulator_cpu["floor"] / max(1, floor_side["requests"]), 3)
    host_floor = [h["requests_in_window"] / max(1, f["requests_in_window"]) for h, f in zip(host_windows, floor_windows)]
    floor_sdk = [f["requests_in_window"] / max(1, s["requests_in_window"]) for f, s in zip(floor_windows, sdk_windows)]
    return {
        "concurrency": CONCURRENCY,
        "users": len(users),
        "rounds": rounds,
        "window_seconds": window_seconds,
        "host": host,
        "sdk": sdk,
        "throughput_ratio": round(median(round_ratios), 3),
        "round_ratios": [round(r, 3) for r in round_ratios],
        "pooled_throughput_ratio": round(host["requests_per_second"] / sdk["requests_per_second"], 3),
        "pinned": (psutil.cpu_count() or 1) >= 2,
        "p99_ratio": round(host["latency_p99_ms"] / sdk["latency_p99_ms"], 3),
        "p50_ratio": round(host["latency_p50_ms"] / sdk["latency_p50_ms"], 3),
        "cpu_ratio": round(host["host_cpu_ms_per_request"] / sdk["client_cpu_ms_per_request"], 3),
        # What one core of the instance serves when ACS and the callers run elsewhere (as in
        # Azure): the inverse of the instance process's CPU per request.
        "capacity_per_core": {"host": round(1000 / host["host_cpu_ms_per_request"]),
                              "sdk": round(1000 / sdk["client_cpu_ms_per_request"]),
                              "ratio": round(sdk["client_cpu_ms_per_request"] / host["host_cpu_ms_per_request"], 3)},
        "gc_tuned_host": {
            "tuning": GC_TUNING,
            **tuned,
            "throughput_ratio": round(median(tuned_ratios), 3),
            "p99_ratio": round(tuned["latency_p99_ms"] / sdk["latency_p99_ms"], 3),
            "cpu_vs_default_host": round(tuned["host_cpu_ms_per_request"] / host["host_cpu_ms_per_request"], 3),
        },
        "floor": {
            **floor_side,
            "host_floor_ratio": round(median(host_floor), 3),
            "host_floor_round_ratios": [round(r, 3) for r in host_floor],
            "floor_sdk_ratio": round(median(floor_sdk), 3),
            "host_floor_p99_ratio": round(host["latency_p99_ms"] / floor_side["latency_p99_ms"], 3),
            "floor_sdk_p99_ratio": round(floor_side["latency_p99_ms"] / sdk["latency_p99_ms"], 3),
            "host_floor_cpu_ratio": round(host["host_cpu_ms_per_request"] / floor_side["server_cpu_ms_per_request"], 3),
            "floor_sdk_cpu_ratio": round(floor_side["server_cpu_ms_per_request"] / sdk["client_cpu_ms_per_request"], 3),
        },
        "acs_issue_calls": calls(before, after, "issueAccessToken"),
        "requests_all_sides": host["requests"] + sdk["requests"] + tuned["requests"] + floor_side["requests"],
        "acs_throttled": after["throttledTotal"] - before["throttledTotal"],
        "host_rss_after_load_mb": round(rss / 2**20, 1),
        "profile": profile,
        "host_gc": gc_stats,
        "tls_connections": {side: {"requests": tls_requests[side],
                                   "by_port": {port: n - tls_before[side].get(port, 0) for port, n in tls_after[side].items()
                                               if n - tls_before[side].get(port, 0)}} for side in ("host", "sdk")},
        "dependency_ports": {str(urlsplit(stack["acsEndpoint"]).port): "ACS", str(urlsplit(stack["tablesEndpoint"]).port): "Table Storage"},
    }
