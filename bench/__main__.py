"""`python -m bench [--quick] [--only p3,p5,p1,p2,p6,memory,p4,sweep]`: every figure against the running local
stack (`make bench` starts a fresh one), then bench/RESULTS.md and bench/results.png (a quick
run writes its summary to bench/results/ instead, so the committed figures are full runs)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from . import cold_first_token, cold_start, cpu_per_request, memory, refresh_storm, report, sweep, throughput, warm_token
from .stack import Emulator, load_stack

HERE = Path(__file__).resolve().parent
ACS_LATENCY_MS = 20
#: P1 and P2 measure cost, so ACS's throttling is kept out of their way.
COST_LIMIT_SCALE = 100
#: The sweep's deleteIdentity limit is 500/30 s × this, so 10,000 users take about a minute.
SWEEP_LIMIT_SCALE = 10
FIGURES = ("p3", "p5", "p1", "p2", "p6", "memory", "p4", "sweep")

FULL = {"p1_iterations": 400, "p2_requests": 4000, "p3_samples": 15, "p4_seconds": 60.0, "sweep_users": 10_000,
        "p5_samples": 9, "p6_rounds": 10, "p6_window_seconds": 3.0, "p6_profile_seconds": 5.0, "memory_users": 100_000}
QUICK = {"p1_iterations": 100, "p2_requests": 1000, "p3_samples": 5, "p4_seconds": 15.0, "sweep_users": 2000,
         "p5_samples": 3, "p6_rounds": 2, "p6_window_seconds": 3.0, "p6_profile_seconds": 3.0, "memory_users": 20_000}
LOGS = HERE / "results"


def _say(message: str) -> None:
    print(message, flush=True)


async def _run(only: set[str], sizes: dict[str, Any]) -> dict[str, Any]:
    stack = load_stack()
    results: dict[str, Any] = {}
    if "p3" in only:  # first, while the machine is quiet
        _say(f"P3 cold start: {sizes['p3_samples']} fresh processes of each kind…")
        results["p3_cold_start"] = await asyncio.to_thread(cold_start.run, sizes["p3_samples"])
        _say(f"  ratio {results['p3_cold_start']['ratio']}")
    async with aiohttp.ClientSession() as session:
        emulator = Emulator(session, stack)
        try:
            await emulator.configure(latencyMs=ACS_LATENCY_MS, limitScale=COST_LIMIT_SCALE, requestsPerSecond=None)
            if "p5" in only:
                _say(f"P5 cold first token: {sizes['p5_samples']} fresh hosts, bare SDK processes and floor servers, interleaved…")
                results["p5_cold_first_token"] = await asyncio.to_thread(cold_first_token.run, stack, sizes["p5_samples"], LOGS)
                _say(f"  ratio {results['p5_cold_first_token']['ratio']}, largest host part "
                     f"{results['p5_cold_first_token']['largest_host_part']}")
            if "p1" in only:
                _say(f"P1 warm token request: {sizes['p1_iterations']} interleaved pairs…")
                results["p1_warm_token"] = await warm_token.run(session, stack, emulator, sizes["p1_iterations"])
                _say(f"  median ratio {results['p1_warm_token']['median_ratio']}")
            if "p2" in only:
                _say(f"P2 CPU per request: {sizes['p2_requests']} requests by 64 callers, host and bare SDK in alternating chunks…")
                await emulator.configure(limitScale=COST_LIMIT_SCALE)
                results["p2_cpu_per_request"] = await cpu_per_request.run(stack, emulator, sizes["p2_requests"])
                _say(f"  ratio {results['p2_cpu_per_request']['ratio']}, peak RSS "
                     f"{results['p2_cpu_per_request']['memory']['peak_rss_under_load_mb']} MB")
            if "p6" in only:
                _say(f"P6 throughput: {throughput.CONCURRENCY} callers, {sizes['p6_rounds']} interleaved rounds of "
                     f"{sizes['p6_window_seconds']:g} s per side, then a profiled window…")
                results["p6_throughput"] = await throughput.run(stack, emulator, sizes["p6_rounds"], sizes["p6_window_seconds"],
                                                                sizes["p6_profile_seconds"], LOGS)
                p6 = results["p6_throughput"]
                _say(f"  throughput ratio {p6['throughput_ratio']}, p99 ratio {p6['p99_ratio']}, "
                     f"host CPU {p6['host']['host_cpu_ms_per_request']} ms per request")
            if "memory" in only:
                _say(f"Memory: every in-process cache filled to {sizes['memory_users']} users…")
                results["memory"] = await memory.run(stack, LOGS, sizes["memory_users"])
                _say(f"  RSS {results['memory']['rss_filled_mb']} MB filled, "
                     f"{results['memory']['rss_after_second_fill_mb']} MB after as many again; "
                     f"bounded: {results['memory']['all_bounded']}")
            if "p4" in only:
                _say(f"P4 refresh storm: {refresh_storm.USERS} users for {sizes['p4_seconds']:.0f} s at the real limits…")
                results["p4_refresh_storm"] = await refresh_storm.run(stack, emulator, sizes["p4_seconds"], COST_LIMIT_SCALE)
                _say(f"  user 429s {results['p4_refresh_storm']['user_429s']}, ACS calls per request "
                     f"{results['p4_refresh_storm']['acs_calls_per_user_request']}")
            if "sweep" in only:
                _say(f"Sweep: {sizes['sweep_users']} tombstoned users, delete limit ×{SWEEP_LIMIT_SCALE}…")
                results["sweep"] = await sweep.run(stack, emulator, sizes["sweep_users"], SWEEP_LIMIT_SCALE)
                _say(f"  {results['sweep']['fraction_of_limit']} of the limit, "
                     f"{results['sweep']['table_operations_per_deleted_user']} table operations per user")
        finally:
            await emulator.configure(latencyMs=None, limitScale=None, requestsPerSecond=None)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (a 15 s storm, 2,000 swept users)")
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated subset of {','.join(FIGURES)}")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if only - set(FIGURES):
        parser.error(f"--only takes {', '.join(FIGURES)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    results = asyncio.run(_run(only, sizes))
    finished = datetime.now(timezone.utc)
    results["meta"] = {
        "quick": args.quick, "figures": sorted(only), "sizes": sizes, "finished": finished.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - started, 1), "acs_latency_ms": ACS_LATENCY_MS,
        "p1_p2_limit_scale": COST_LIMIT_SCALE, "sweep_limit_scale": SWEEP_LIMIT_SCALE, **report.machine(),
    }

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    raw = json.dumps(results, indent=2) + "\n"
    (out / f"{finished.strftime('%Y%m%dT%H%M%SZ')}.json").write_text(raw)
    (out / "latest.json").write_text(raw)
    full_run = not args.quick and only == set(FIGURES)
    summary_dir, plot_name = (HERE, "results.png") if full_run else (out, "results-partial.png")
    report.plot(results, summary_dir / plot_name)
    text = report.markdown(results, plot_name)
    (summary_dir / ("RESULTS.md" if full_run else "RESULTS-partial.md")).write_text(text)
    _say("")
    _say(text)
    _say(f"({results['meta']['seconds']:.0f} s; summary in {summary_dir.relative_to(HERE.parent)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
