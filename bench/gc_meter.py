"""CPU time the cyclic garbage collector takes in this process, per generation, between
``start()`` and ``stop()`` (a gc callback; thread CPU time, so a collection preempted by another
process on the shared cores does not count the wait). Used on both sides of P6; off by default,
because the callback itself costs a little CPU."""

from __future__ import annotations

import gc
import time
from typing import Any

from . import tls_meter

tls_meter.install()  # counted over the same window: new TLS connections (bench.tls_meter)

_totals: dict[str, Any] = {}
_started: list[float] = []


def _callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[:] = [time.thread_time()]
    elif _started:
        generation = info["generation"]
        _totals["collections"][generation] += 1
        _totals["seconds"][generation] += time.thread_time() - _started[0]


def running() -> bool:
    return _callback in gc.callbacks


def start() -> None:
    _totals.update(collections=[0, 0, 0], seconds=[0.0, 0.0, 0.0], process_cpu_seconds=time.process_time(),
                   tls=tls_meter.snapshot())
    if not running():
        gc.callbacks.append(_callback)


def stop() -> dict[str, Any]:
    """What was counted since start(): collections and CPU seconds per generation, the process's
    CPU seconds over the same span, and the GC's share of it."""
    if running():
        gc.callbacks.remove(_callback)
    cpu = time.process_time() - _totals["process_cpu_seconds"]
    return {
        "collections": _totals["collections"],
        "cpu_seconds": [round(x, 4) for x in _totals["seconds"]],
        "process_cpu_seconds": round(cpu, 3),
        "share_of_cpu": round(sum(_totals["seconds"]) / cpu, 3) if cpu > 0 else 0.0,
        "objects_tracked": len(gc.get_objects()),
        "tls_connections": tls_meter.since(_totals["tls"]),
        "tls_connections_since_start": tls_meter.snapshot(),
    }
