"""The run's figures as a Markdown table (bench/RESULTS.md) and a plot (bench/results.png)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import psutil


def _row(name: str, measured: str, goal: str, met: bool | None, how: str) -> str:
    mark = "" if met is None else ("yes" if met else "**no**")
    return f"| {name} | {measured} | {goal} | {mark} | {how} |"


def goals(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None, str]]:
    """(figure, measured, goal, met, how measured) for each figure present in the run."""
    rows = []
    if p1 := results.get("p1_warm_token"):
        rows.append(("P1 warm token request: handler / bare SDK, median", f"{p1['median_ratio']:.3f}", "≤ 1.05",
                     p1["median_ratio"] <= 1.05,
                     f"{p1['iterations']} interleaved pairs; handler {p1['handler']['median_ms']:.1f} ms, "
                     f"SDK {p1['sdk']['median_ms']:.1f} ms (p95 {p1['handler']['p95_ms']:.1f} / {p1['sdk']['p95_ms']:.1f} ms, "
                     f"ratio {p1['p95_ratio']:.3f})"))
    if p2 := results.get("p2_cpu_per_request"):
        rows.append(("P2 CPU per token request: host / bare SDK, 64 callers", f"{p2['ratio']:.3f}", "≤ 1.3",
                     p2["ratio"] <= 1.3,
                     f"{p2['requests']} requests each, {p2.get('interleaved_chunks', 'not interleaved')}; host {p2['host_cpu_ms_per_request']:.2f} ms, "
                     f"SDK {p2['sdk_cpu_ms_per_request']:.2f} ms CPU per request"))
        memory = p2["memory"]
        rows.append(("Memory: function host peak RSS under P2's load", f"{memory['peak_rss_under_load_mb']:.0f} MB", "", None,
                     f"{memory['rss_before_mb']:.0f} MB before the load"))
    if p3 := results.get("p3_cold_start"):
        rows.append(("P3 cold start: import function_app / import its SDKs", f"{p3['ratio']:.3f}", "≤ 1.15",
                     p3["ratio"] <= 1.15,
                     f"median of {p3['samples']} fresh processes each; {p3['function_app_median_ms']:.0f} ms vs "
                     f"{p3['sdks_median_ms']:.0f} ms"
                     + (f"; {len(p3['telemetry_installed'])} telemetry packages installed, loaded by the import: "
                        f"{', '.join(p3['telemetry_loaded_by_import']) or 'none'}" if "telemetry_installed" in p3 else "")))
    if p5 := results.get("p5_cold_first_token"):
        parts = p5["host_parts_median_ms"]
        bare = p5["bare_parts_median_ms"]
        rows.append(("P5 cold first token: fresh host / fresh bare SDK process, median", f"{p5['ratio']:.3f}", "≤ 1.2",
                     p5["ratio"] <= 1.2,
                     f"{p5['samples']} interleaved pairs, process start to the first 200 for a new user; host "
                     f"{p5['host_median_ms']:.0f} ms, bare {p5['bare_median_ms']:.0f} ms (p95 {p5['host_p95_ms']:.0f} / "
                     f"{p5['bare_p95_ms']:.0f} ms)"))
        rows.append(("P5 host parts (median ms)", _largest(parts), "reported", None,
                     "; ".join(f"{_part(k)} {v:.0f}" for k, v in parts.items())))
        rows.append(("P5 bare SDK parts (median ms)", _largest(bare), "reported", None,
                     "; ".join(f"{_part(k)} {v:.0f}" for k, v in bare.items())))
        if "floor_median_ms" in p5:
            floor = p5["floor_parts_median_ms"]
            rows.append(("P5 cold first token: fresh host / fresh floor server, median", f"{p5['host_floor_ratio']:.3f}", "reported",
                         None,
                         f"floor: the bare process's work behind one aiohttp.web handler (bench/floor_server.py), in the same "
                         f"interleaved rounds; floor {p5['floor_median_ms']:.0f} ms (p95 {p5['floor_p95_ms']:.0f}); "
                         f"floor / bare {p5['floor_bare_ratio']:.3f}"))
            rows.append(("P5 floor server parts (median ms)", _largest(floor), "reported", None,
                         "; ".join(f"{_part(k)} {v:.0f}" for k, v in floor.items())
                         + f" (of the server start, importing aiohttp.web {p5['floor_server_import_median_ms']:.0f})"))
    if p6 := results.get("p6_throughput"):
        host, sdk = p6["host"], p6["sdk"]
        rows.append((f"P6 throughput per instance: host / bare SDK, {p6['concurrency']} callers", f"{p6['throughput_ratio']:.3f}",
                     "≥ 0.9", p6["throughput_ratio"] >= 0.9,
                     f"median of {p6['rounds']} interleaved rounds' ratios ({', '.join(f'{r:.2f}' for r in p6['round_ratios'])}); "
                     f"host {host['requests_per_second']:.0f}/s, SDK {sdk['requests_per_second']:.0f}/s"
                     + ("; instance process on CPU 0, emulator and load generator on CPU 1" if p6.get("pinned") else "")))
        rows.append(("P6 p99 latency: host / bare SDK", f"{p6['p99_ratio']:.3f}", "≤ 1.3", p6["p99_ratio"] <= 1.3,
                     f"host p99 {host['latency_p99_ms']:.0f} ms (p50 {host['latency_p50_ms']:.0f}), SDK p99 "
                     f"{sdk['latency_p99_ms']:.0f} ms (p50 {sdk['latency_p50_ms']:.0f}); statuses host {host['statuses']}, SDK {sdk['statuses']}"))
        capacity = p6["capacity_per_core"]
        rows.append(("P6 capacity per core: host / bare SDK (1 / CPU per request)", f"{capacity['ratio']:.3f}", "reported", None,
                     f"what one core of the instance serves with ACS and callers elsewhere: host {capacity['host']}/s, SDK "
                     f"{capacity['sdk']}/s; on this machine the emulator on CPU 1 takes {host['emulator_cpu_ms_per_request']:.2f} ms "
                     f"per request"))
        gc_share = p6.get("host_gc") or {}
        gc_text = (f"; garbage collection {100 * gc_share['host']['share_of_cpu']:.0f}% of the host's CPU, "
                   f"{100 * gc_share['sdk']['share_of_cpu']:.0f}% of the SDK process's" if gc_share else "")
        rows.append(("P6 CPU per request under load: host / bare SDK", f"{p6['cpu_ratio']:.3f}", "reported", None,
                     f"host process {host['host_cpu_ms_per_request']:.2f} ms, SDK process {sdk['client_cpu_ms_per_request']:.2f} ms, "
                     f"host side's load generator {host['client_cpu_ms_per_request']:.2f} ms"
                     + gc_text))
        if tls := p6.get("tls_connections"):
            names = p6.get("dependency_ports", {})

            def per_thousand(side: dict[str, Any]) -> str:
                shown = ", ".join(f"{names.get(port, 'port ' + port)} {1000 * n / max(1, side['requests']):.1f}"
                                  for port, n in sorted(side["by_port"].items())) or "none"
                return f"{shown} ({side['requests']} requests)"

            host_total = 1000 * sum(tls["host"]["by_port"].values()) / max(1, tls["host"]["requests"])
            rows.append(("P6 TLS connections opened under load, per 1,000 requests: host", f"{host_total:.1f}", "reported",
                         None, f"from the first round to the last window, idle gaps between a side's windows included; host: "
                         f"{per_thousand(tls['host'])}; SDK process: {per_thousand(tls['sdk'])}; each is a TLS handshake on the "
                         f"instance's core"))
        if floor := p6.get("floor"):
            rows.append(("P6 throughput: host / floor server, 256 callers", f"{floor['host_floor_ratio']:.3f}", "reported", None,
                         f"floor: the same get_token behind one aiohttp.web handler (bench/floor_server.py), pinned and loaded as "
                         f"the host, in the same rounds ({', '.join(f'{r:.2f}' for r in floor['host_floor_round_ratios'])}); "
                         f"floor {floor['requests_per_second']:.0f}/s; floor / SDK {floor['floor_sdk_ratio']:.3f}"))
            rows.append(("P6 p99 latency: host / floor server", f"{floor['host_floor_p99_ratio']:.3f}", "reported", None,
                         f"floor p99 {floor['latency_p99_ms']:.0f} ms (p50 {floor['latency_p50_ms']:.0f}); floor / SDK p99 "
                         f"{floor['floor_sdk_p99_ratio']:.3f}; statuses floor {floor['statuses']}"))
            rows.append(("P6 CPU per request under load: host / floor server", f"{floor['host_floor_cpu_ratio']:.3f}", "reported",
                         None,
                         f"floor server process {floor['server_cpu_ms_per_request']:.2f} ms (host {host['host_cpu_ms_per_request']:.2f}, "
                         f"SDK {sdk['client_cpu_ms_per_request']:.2f}); floor / SDK {floor['floor_sdk_cpu_ratio']:.3f}"))
        if tuned := p6.get("gc_tuned_host"):
            rows.append(("P6 without the app's GC settings: host / bare SDK", f"{tuned['throughput_ratio']:.3f}", "reported",
                         None,
                         f"same rounds, a second host with shared/garbage_collection.py undone (nothing frozen, gen-0 "
                         f"threshold 700): {tuned['requests_per_second']:.0f}/s, p99 ratio {tuned['p99_ratio']:.2f}, CPU "
                         f"{tuned['host_cpu_ms_per_request']:.2f} ms per request = {tuned['cpu_vs_default_host']:.2f} × the app's host"))
    if memory := results.get("memory"):
        rows.append((f"Memory: host RSS, every cache holding {memory['users']:,} users", f"{memory['rss_filled_mb']:.0f} MB", "reported",
                     None, f"{memory['rss_before_mb']:.0f} MB before; {len(memory['ttl_caches'])} caches found, all filled from real "
                     f"entries: {'yes' if memory['all_filled'] else 'no'}"))
        rows.append(("Memory: every cache bounded", "yes" if memory["all_bounded"] else "no", "yes", memory["all_bounded"],
                     f"{memory['users']:,} more users pushed through each: RSS {memory['rss_after_second_fill_mb']:.0f} MB, "
                     f"no cache over its bound; in-flight tables empty after the load"))
    if p4 := results.get("p4_refresh_storm"):
        rows.append(("P4 refresh storm: 429s reaching a user", str(p4["user_429s"]), "0", p4["user_429s"] == 0,
                     f"{p4['users']} users every {p4['interval_seconds']:.0f} s for {p4['seconds']:.0f} s: "
                     f"{p4['requests']} requests, statuses {p4['statuses']}, real ACS limits"))
        rows.append(("P4 ACS issue calls per user request", f"{p4['acs_calls_per_user_request']:.3f}", "reported", None,
                     f"{p4['acs_issue_calls']} issueAccessToken calls, {p4['acs_throttled']} throttled by ACS; "
                     f"latency median {p4['latency']['median_ms']:.1f} ms, p99 {p4['latency']['p99_ms']:.1f} ms"))
        burst = p4["burst"]
        # A no-cache request never joins an issue begun before it came: those arriving while one is
        # under way share the next, so a burst costs at most two (README, "What each instance remembers").
        rows.append(("P4 one user's concurrent no-cache requests: ACS issue calls", f"{burst['acs_issue_calls']}", "≤ 2",
                     burst["acs_issue_calls"] <= 2 and burst["ok"] == burst["requests"],
                     f"{burst['requests']} concurrent no-cache requests, {burst['ok']} answered 200, "
                     f"{burst.get('distinct_tokens', '?')} distinct tokens"))
    if sweep := results.get("sweep"):
        rows.append(("Sweep: achieved delete rate / deleteIdentity limit", f"{sweep['fraction_of_limit']:.3f}", "≥ 0.8",
                     sweep["fraction_of_limit"] >= 0.8,
                     f"{sweep['deleted']} of {sweep['users']} tombstoned users in {sweep['sweep_seconds']:.1f} s = "
                     f"{sweep['achieved_deletes_per_second']:.0f}/s; limit 500/30 s × {sweep['limit_scale']:g} = "
                     f"{sweep['delete_limit_per_second']:.0f}/s; {sweep['acs_throttled']} throttled"))
        rows.append(("Sweep: table operations per deleted user", f"{sweep['table_operations_per_deleted_user']:.2f}",
                     "reported", None,
                     f"{sweep['table_operations']} operations; sweeper CPU {sweep['sweeper_cpu_ms_per_deleted_user']:.1f} ms per user"))
        if sweep.get("azurite_cpu_ms_per_deleted_user") is not None:
            stack_ms = (sweep["sweeper_cpu_ms_per_deleted_user"] + sweep["azurite_cpu_ms_per_deleted_user"]
                        + sweep["emulator_cpu_ms_per_deleted_user"])
            rows.append(("Sweep: CPU per deleted user, whole local stack", f"{stack_ms:.1f} ms", "reported", None,
                         f"sweeper {sweep['sweeper_cpu_ms_per_deleted_user']:.1f}, Azurite {sweep['azurite_cpu_ms_per_deleted_user']:.1f}, "
                         f"ACS emulator {sweep['emulator_cpu_ms_per_deleted_user']:.1f} ms; the limit's rate would take "
                         f"{stack_ms * sweep['delete_limit_per_second'] / 1000:.1f} cores; the machine's "
                         f"{sweep['machine_cores']} cores were {sweep['machine_cores_busy']:.2f} busy during the sweep, other work included"))
    return rows


_PART_NAMES = {"interpreter_ms": "interpreter", "host_start_ms": "host start", "app_import_ms": "app import",
               "wait_for_request_ms": "to first request",
               "server_start_ms": "server start", "sdk_import_ms": "SDK imports", "credential_ms": "credential tokens",
               "table_ms": "table calls", "acs_ms": "ACS call", "other_ms": "rest"}


def _part(key: str) -> str:
    return _PART_NAMES.get(key, key)


def _largest(parts: dict[str, float]) -> str:
    name = max(parts, key=lambda k: parts[k])
    return f"largest: {_part(name)}"


def details(results: dict[str, Any]) -> list[str]:
    """The sections under the table: P6's profile and the memory figure's caches."""
    lines: list[str] = []
    p6 = results.get("p6_throughput")
    if p6 and "self_top" in p6.get("profile", {}):
        profile = p6["profile"]
        lines += [
            "## Where the host's CPU goes under P6's load",
            "",
            f"py-spy, {profile['samples']} samples at 200 Hz of the function host while {p6['concurrency']} callers sent "
            f"{profile['requests']} token requests (share of samples; idle time not sampled).",
            "",
            "| By package (own time) | % |  | By function (own time) | % |",
            "| --- | --- | --- | --- | --- |",
        ]
        for (package, share), (function, own) in zip(profile["packages_self"][:12], profile["self_top"][:12]):
            lines.append(f"| {package} | {share:.1f} |  | `{function}` | {own:.1f} |")
        lines += ["", "The service's own functions, including what they call:", "",
                  "| Function | % of samples |", "| --- | --- |"]
        lines += [f"| `{name}` | {share:.1f} |" for name, share in profile["service_inclusive"][:8]]
        lines.append("")
    memory = results.get("memory")
    if memory:
        lines += [
            f"## Memory: each cache with {memory['users']:,} users",
            "",
            "| Cache | Bound | TTL s | Entries after fill | After as many again | RSS added by the fill |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for cache in memory["ttl_caches"]:
            lines.append(f"| `{cache['name']}` | {cache['max_entries']:,} | {cache['ttl_seconds']:g} | {cache['entries_after_fill']:,} | "
                         f"{cache['entries_after_second_fill']:,} | {cache['rss_added_mb']:.1f} MB |")
        flights = ", ".join(f"`{f['name']}` {f['in_flight']}" for f in memory["single_flights"])
        lines += ["", f"Single flights (entries exist only while a call is in flight), after the load: {flights}.", ""]
    return lines


def markdown(results: dict[str, Any], plot_name: str) -> str:
    meta = results["meta"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`python -m bench{' --quick' if meta['quick'] else ''}`) on {meta['finished']} "
        f"against a fresh local stack; {meta['cpus']} CPUs, Python {meta['python']}. ACS emulator latency "
        f"{meta['acs_latency_ms']} ms per call. P1 and P2 run with the emulator's limits scaled ×{meta['p1_p2_limit_scale']:g} "
        "(they measure cost, not throttling); P4 runs at the real limits. Every ratio compares two sides measured "
        "interleaved in the same run (alternating pairs or windows in random order), because the machine's 2 cores "
        "are shared with other work.",
        "",
        "| Figure | Measured | Goal | Met | How |",
        "| --- | --- | --- | --- | --- |",
        *(_row(*row) for row in goals(results)),
        "",
        f"![benchmark figures]({plot_name})",
        "",
        *details(results),
        "Raw figures of every run: bench/results/ (not committed).",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (ratios_axis, storm_axis) = plt.subplots(1, 2, figsize=(15, 4.8), gridspec_kw={"width_ratios": [1, 1.3]})

    bars = []
    for key, label, value_key, goal in (
        ("p1_warm_token", "P1 latency\nhandler/SDK", "median_ratio", 1.05),
        ("p2_cpu_per_request", "P2 CPU\nhost/SDK", "ratio", 1.3),
        ("p3_cold_start", "P3 import\napp/SDKs", "ratio", 1.15),
        ("p5_cold_first_token", "P5 cold token\nhost/bare", "ratio", 1.2),
        ("p6_throughput", "P6 req/s\nhost/SDK", "throughput_ratio", 0.9),
        ("p6_throughput", "P6 p99\nhost/SDK", "p99_ratio", 1.3),
        ("sweep", "Sweep rate\n/limit", "fraction_of_limit", 0.8),
    ):
        if key in results:
            bars.append((label, results[key][value_key], goal))
    if bars:
        positions = range(len(bars))
        values = [v for _, v, _ in bars]
        at_least = ("Sweep", "req/s")
        colours = ["tab:green" if (v >= g if any(a in label for a in at_least) else v <= g) else "tab:red" for label, v, g in bars]
        ratios_axis.bar(positions, values, color=colours, width=0.6)
        for x, (_, value, goal) in zip(positions, bars):
            ratios_axis.hlines(goal, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
            ratios_axis.text(x, value + 0.02, f"{value:.2f}", ha="center", va="bottom", fontsize=9)
        ratios_axis.set_xticks(list(positions), [label for label, _, _ in bars], fontsize=8)
        ratios_axis.axhline(1.0, color="grey", linewidth=0.5)
        ratios_axis.set_ylabel("ratio (dashed: goal)")
        ratios_axis.set_title("Ratios against their goals")

    storm = results.get("p4_refresh_storm")
    if storm:
        # ACS's limit is per 30-second window, so both lines count the trailing 30 s.
        window = 30
        per_second = storm["timeline"]["user_requests_per_second"]
        requests_30s = [sum(per_second[max(0, t - window + 1):t + 1]) for t in range(len(per_second))]
        samples = storm["timeline"]["acs_issue_calls"]

        def issued_by(moment: float) -> float:
            earlier = [s["issue_calls"] for s in samples if s["t"] <= moment]
            return earlier[-1] if earlier else 0

        calls_30s = [issued_by(t + 1) - issued_by(t + 1 - window) for t in range(len(per_second))]
        seconds = range(1, len(per_second) + 1)
        storm_axis.plot(seconds, requests_30s, label="user token requests", color="tab:blue")
        storm_axis.plot(seconds, calls_30s, label="ACS issueAccessToken calls", color="tab:orange")
        storm_axis.axhline(1000, color="tab:red", linestyle="dashed", label="ACS limit: 1000 issue calls per 30 s")
        storm_axis.set_xlabel("seconds into the storm")
        storm_axis.set_ylabel("in the last 30 s")
        storm_axis.set_title(f"P4: {storm['users']} users refreshing every {storm['interval_seconds']:.0f} s "
                             f"({storm['user_429s']} user 429s)", fontsize=10)
        storm_axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine() -> dict[str, Any]:
    return {"cpus": psutil.cpu_count(), "python": platform.python_version()}
