"""A function host process with the benchmarks' probes: ``python -m bench.host_process
FUNCHOST-ARGS…`` runs ``devstack.funchost`` unchanged, and additionally

- records when the process started, when the app's import began and ended, when the host
  listened, when its first request arrived and was answered, and (bench.probe) every SDK HTTP
  request and credential token of that first request; written as JSON to BENCH_PROBE_OUT
  shortly after the first response (P5);
- on SIGUSR2, when BENCH_GC_OUT is set, starts or stops counting garbage-collection CPU time;
- on SIGUSR1, when BENCH_CACHE_REPORT is set, fills every in-process cache of the app to the
  number of users in BENCH_CACHE_USERS and writes what it found to that file (memory figure,
  bench.cache_fill).

The probes only read the clock around the host's own functions; no request takes another path.
"""

from __future__ import annotations

import time

STARTED = time.time()

import asyncio  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from . import probe  # noqa: E402

if os.environ.get("BENCH_PROBE_OUT"):  # P5 only: the probes keep every event in memory
    probe.install()
probe.mark("process_started", STARTED)

from aiohttp import web  # noqa: E402

import devstack.funchost.__main__ as funchost_main  # noqa: E402
from devstack.funchost.server import FunctionHost  # noqa: E402


def _write_probe_report() -> None:
    path = os.environ.get("BENCH_PROBE_OUT")
    if path:
        with open(path, "w") as out:
            json.dump({"marks": probe.MARKS, "events": probe.EVENTS}, out)


def _patch_import() -> None:
    original = funchost_main.import_function_app

    @functools.wraps(original)
    def import_function_app(*args: Any, **kwargs: Any) -> Any:
        probe.mark("import_started")
        try:
            return original(*args, **kwargs)
        finally:
            probe.mark("import_finished")
            _tune_gc(os.environ.get("BENCH_GC_TUNING", ""))

    funchost_main.import_function_app = import_function_app


def _tune_gc(tuning: str) -> None:
    """An experiment for the report (BENCH_GC_TUNING, off by default): "freeze" moves every
    object alive after the app's import out of the collector's sight (gc.freeze), "unfreeze" puts
    them back (undoing the app's own freeze); "threshold=N"
    sets the youngest generation's threshold. Comma-separated."""
    import gc

    for item in filter(None, tuning.split(",")):
        if item == "freeze":
            gc.collect()
            gc.freeze()
        elif item == "unfreeze":
            gc.unfreeze()
        elif item.startswith("threshold="):
            _, second, third = gc.get_threshold()
            gc.set_threshold(int(item.split("=", 1)[1]), second, third)


def _patch_listen() -> None:
    original = web.TCPSite.start

    @functools.wraps(original)
    async def start(self: Any) -> None:
        await original(self)
        probe.mark("listening")
        if os.environ.get("BENCH_GC_OUT"):
            _count_gc_on_signal()
        if os.environ.get("BENCH_CACHE_REPORT"):
            from .cache_fill import fill_on_signal

            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, fill_on_signal)

    web.TCPSite.start = start


def _patch_first_request() -> None:
    original = FunctionHost._handle

    @functools.wraps(original)
    async def handle(self: Any, request: Any) -> Any:
        first = "first_request_received" not in probe.MARKS
        if first:
            probe.mark("first_request_received")
        response = await original(self, request)
        if first:
            probe.mark("first_response_ready")
            asyncio.get_running_loop().call_later(0.2, _write_probe_report)
        return response

    FunctionHost._handle = handle


def _count_gc_on_signal() -> None:
    """SIGUSR2 starts counting the garbage collector's CPU time (bench.gc_meter); the next
    SIGUSR2 stops and writes the count to BENCH_GC_OUT."""
    from . import gc_meter

    def toggle() -> None:
        if gc_meter.running():
            with open(os.environ["BENCH_GC_OUT"], "w") as out:
                json.dump(gc_meter.stop(), out)
        else:
            gc_meter.start()

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, toggle)


def main() -> int:
    _patch_import()
    _patch_listen()
    _patch_first_request()
    return funchost_main.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
