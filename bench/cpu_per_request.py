"""P2: CPU time per token request in the function host vs the bare SDK call, 64 concurrent
callers; and the function host's peak memory (RSS) under that load.

Both sides issue the same issueAccessToken calls (``Cache-Control: no-cache`` on the handler
side, so none is answered from the reuse window). The host's CPU is read from its process
(user + system, all threads) around the measured requests; the SDK side runs in a process of
its own (bench.sdk_load) that reports its own CPU time, so neither includes the load generator.
The requests are made in chunks, host and SDK alternating in random order, so background load
on the shared cores hits both sides alike.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import subprocess
import sys
import threading
import time
from typing import Any

import aiohttp
import psutil

from .measure import FunctionHostClient
from .stack import ROOT, Emulator, calls, function_host_process, new_users

CONCURRENCY = 64
CHUNKS = 8


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _peak_rss_since_start(process: psutil.Process) -> int | None:
    """The kernel's high-water mark of the process's RSS (VmHWM), in bytes."""
    try:
        for line in open(f"/proc/{process.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Samples a process's RSS every few milliseconds on a thread; keeps the peak."""

    def __init__(self, process: psutil.Process, interval: float = 0.01) -> None:
        self._process = process
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def _handler_load(host: FunctionHostClient, users: list, requests: int) -> tuple[int, dict[int, int]]:
    numbers = itertools.count()
    rotation = itertools.cycle(users)
    statuses: dict[int, int] = {}

    async def caller() -> None:
        while next(numbers) < requests:
            status, _ = await host.token(next(rotation), fresh=True)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    return requests, statuses


async def run(stack: dict[str, Any], emulator: Emulator, requests: int) -> dict[str, Any]:
    # Enough users that none nears the per-user limit (60 a minute) while the load runs.
    users = new_users(max(CONCURRENCY, requests // 20), "cpu")
    process = function_host_process(stack)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        host = FunctionHostClient(session, stack["functionHost"])
        identities: list[str] = []

        async def first_call(user) -> None:
            status, body = await host.token(user)
            if status != 200:
                raise RuntimeError(f"warm-up token request answered {status}: {body}")
            identities.append(body["communicationUserId"])

        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def bounded(user) -> None:
            async with semaphore:
                await first_call(user)

        await asyncio.gather(*(bounded(u) for u in users))
        await _handler_load(host, users, CONCURRENCY * 2)  # warm connections and the host

        sdk_process = subprocess.Popen([sys.executable, "-m", "bench.sdk_load", stack["acsEndpoint"], str(CONCURRENCY)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert sdk_process.stdin is not None and sdk_process.stdout is not None

        def sdk_chunk(count: int) -> dict[str, float]:
            sdk_process.stdin.write(f"run {count}\n")
            sdk_process.stdin.flush()
            line = sdk_process.stdout.readline()
            if not line:
                raise RuntimeError(f"bench.sdk_load exited with {sdk_process.wait()}")
            return json.loads(line)

        try:
            sdk_process.stdin.write(json.dumps(identities) + "\n")
            sdk_process.stdin.flush()
            chunk = max(CONCURRENCY, requests // CHUNKS)
            rss_before = process.memory_info().rss
            before = await emulator.stats()
            done, statuses, host_cpu, host_wall = 0, {}, 0.0, 0.0
            sdk_result = {"cpu_seconds": 0.0, "wall_seconds": 0.0, "requests": 0}
            with RssSampler(process) as sampler:
                for _ in range(max(1, requests // chunk)):
                    sides = ["host", "sdk"]
                    random.shuffle(sides)
                    for side in sides:
                        if side == "host":
                            cpu, wall = _cpu_seconds(process), time.perf_counter()
                            count, chunk_statuses = await _handler_load(host, users, chunk)
                            host_cpu += _cpu_seconds(process) - cpu
                            host_wall += time.perf_counter() - wall
                            done += count
                            for status, n in chunk_statuses.items():
                                statuses[status] = statuses.get(status, 0) + n
                        else:
                            for key, value in (await asyncio.to_thread(sdk_chunk, chunk)).items():
                                sdk_result[key] += value
            after = await emulator.stats()
        finally:
            sdk_process.stdin.write("quit\n")
            sdk_process.stdin.flush()
            sdk_process.wait(timeout=30)
    host_per_request = host_cpu / done
    sdk_per_request = sdk_result["cpu_seconds"] / sdk_result["requests"]
    return {
        "concurrency": CONCURRENCY,
        "requests": done,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "acs_issue_calls": calls(before, after, "issueAccessToken") - int(sdk_result["requests"]),
        "interleaved_chunks": f"{max(1, requests // chunk)} × {chunk} requests per side",
        "acs_throttled": after["throttledTotal"] - before["throttledTotal"],
        "host_cpu_ms_per_request": round(host_per_request * 1000, 3),
        "sdk_cpu_ms_per_request": round(sdk_per_request * 1000, 3),
        "ratio": round(host_per_request / sdk_per_request, 3),
        "host_requests_per_second": round(done / host_wall, 1),
        "sdk_requests_per_second": round(sdk_result["requests"] / sdk_result["wall_seconds"], 1),
        "memory": {
            "rss_before_mb": round(rss_before / 2**20, 1),
            "peak_rss_under_load_mb": round(sampler.peak / 2**20, 1),
            "peak_rss_since_start_mb": round((_peak_rss_since_start(process) or 0) / 2**20, 1),
        },
    }
