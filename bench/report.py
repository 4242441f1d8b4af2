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
                     f"{p2['requests']} requests each; host {p2['host_cpu_ms_per_request']:.2f} ms, "
                     f"SDK {p2['sdk_cpu_ms_per_request']:.2f} ms CPU per request"))
        memory = p2["memory"]
        rows.append(("Memory: function host peak RSS under P2's load", f"{memory['peak_rss_under_load_mb']:.0f} MB", "", None,
                     f"{memory['rss_before_mb']:.0f} MB before the load"))
    if p3 := results.get("p3_cold_start"):
        rows.append(("P3 cold start: import function_app / import its SDKs", f"{p3['ratio']:.3f}", "≤ 1.15",
                     p3["ratio"] <= 1.15,
                     f"median of {p3['samples']} fresh processes each; {p3['function_app_median_ms']:.0f} ms vs "
                     f"{p3['sdks_median_ms']:.0f} ms"))
    if p4 := results.get("p4_refresh_storm"):
        rows.append(("P4 refresh storm: 429s reaching a user", str(p4["user_429s"]), "0", p4["user_429s"] == 0,
                     f"{p4['users']} users every {p4['interval_seconds']:.0f} s for {p4['seconds']:.0f} s: "
                     f"{p4['requests']} requests, statuses {p4['statuses']}, real ACS limits"))
        rows.append(("P4 ACS issue calls per user request", f"{p4['acs_calls_per_user_request']:.3f}", "reported", None,
                     f"{p4['acs_issue_calls']} issueAccessToken calls, {p4['acs_throttled']} throttled by ACS; "
                     f"latency median {p4['latency']['median_ms']:.1f} ms, p99 {p4['latency']['p99_ms']:.1f} ms"))
        burst = p4["burst"]
        rows.append(("P4 one user's concurrent requests share one ACS call", f"{burst['acs_issue_calls']}", "1",
                     burst["acs_issue_calls"] == 1 and burst["ok"] == burst["requests"],
                     f"{burst['requests']} concurrent no-cache requests, {burst['ok']} answered 200"))
    if sweep := results.get("sweep"):
        rows.append(("Sweep: achieved delete rate / deleteIdentity limit", f"{sweep['fraction_of_limit']:.3f}", "≥ 0.8",
                     sweep["fraction_of_limit"] >= 0.8,
                     f"{sweep['deleted']} of {sweep['users']} tombstoned users in {sweep['sweep_seconds']:.1f} s = "
                     f"{sweep['achieved_deletes_per_second']:.0f}/s; limit 500/30 s × {sweep['limit_scale']:g} = "
                     f"{sweep['delete_limit_per_second']:.0f}/s; {sweep['acs_throttled']} throttled"))
        rows.append(("Sweep: table operations per deleted user", f"{sweep['table_operations_per_deleted_user']:.2f}",
                     "reported", None,
                     f"{sweep['table_operations']} operations; sweeper CPU {sweep['sweeper_cpu_ms_per_deleted_user']:.1f} ms per user"))
    return rows


def markdown(results: dict[str, Any], plot_name: str) -> str:
    meta = results["meta"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`python -m bench{' --quick' if meta['quick'] else ''}`) on {meta['finished']} "
        f"against a fresh local stack; {meta['cpus']} CPUs, Python {meta['python']}. ACS emulator latency "
        f"{meta['acs_latency_ms']} ms per call. P1 and P2 run with the emulator's limits scaled ×{meta['p1_p2_limit_scale']:g} "
        "(they measure cost, not throttling); P4 runs at the real limits.",
        "",
        "| Figure | Measured | Goal | Met | How |",
        "| --- | --- | --- | --- | --- |",
        *(_row(*row) for row in goals(results)),
        "",
        f"![benchmark figures]({plot_name})",
        "",
        "Raw figures of every run: bench/results/ (not committed).",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (ratios_axis, storm_axis) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1, 1.3]})

    bars = []
    for key, label, value_key, goal in (
        ("p1_warm_token", "P1 latency\nhandler/SDK", "median_ratio", 1.05),
        ("p2_cpu_per_request", "P2 CPU\nhost/SDK", "ratio", 1.3),
        ("p3_cold_start", "P3 import\napp/SDKs", "ratio", 1.15),
        ("sweep", "Sweep rate\n/limit", "fraction_of_limit", 0.8),
    ):
        if key in results:
            bars.append((label, results[key][value_key], goal))
    if bars:
        positions = range(len(bars))
        values = [v for _, v, _ in bars]
        colours = ["tab:green" if (v >= g if "Sweep" in label else v <= g) else "tab:red" for label, v, g in bars]
        ratios_axis.bar(positions, values, color=colours, width=0.6)
        for x, (_, value, goal) in zip(positions, bars):
            ratios_axis.hlines(goal, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
            ratios_axis.text(x, value + 0.02, f"{value:.2f}", ha="center", va="bottom", fontsize=9)
        ratios_axis.set_xticks(list(positions), [label for label, _, _ in bars], fontsize=9)
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
