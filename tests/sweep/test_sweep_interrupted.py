"""A sweep that runs out of time, or is killed, leaves its remaining work for the next run,
which finishes it: identity, then mapping, then tombstone, so nothing is orphaned."""

from __future__ import annotations

import signal
import time

import requests

from tests.conftest import Emulator


def test_sweep_stops_at_its_time_budget_and_counts_what_is_left(sweep_host, quiet_emulator: Emulator):
    """A 5-second budget, one worker, and ACS taking 2 s per call: the run deletes a few,
    reports the rest as left, and the next run (ACS fast again) deletes exactly those."""
    host = sweep_host("sweep-budget", CLEANUP_TIME_BUDGET_SECONDS="5", CLEANUP_CONCURRENCY="1")
    doomed = host.users_with_identities(8)
    host.mark([u.app_user_id for u, _ in doomed])
    quiet_emulator.configure(latencyMs=2000)
    deletes = quiet_emulator.calls("deleteIdentity")
    first = host.sweep()
    quiet_emulator.configure(latencyMs=None)
    assert first["found"] == 8 and first["failed"] == 0
    assert first["deleted"] >= 1 and first["left"] >= 1, first
    assert first["deleted"] + first["left"] == 8, first
    assert quiet_emulator.calls("deleteIdentity") - deletes == first["deleted"], "every delete counted, none beyond"
    assert len({cid for _, cid in doomed} & quiet_emulator.identities()) == first["left"]

    second = host.sweep()
    assert (second["deleted"], second["retained"], second["left"], second["failed"]) == (first["left"], first["deleted"], 0, 0)
    assert not {cid for _, cid in doomed} & quiet_emulator.identities()
    assert host.mappings() == {}


def test_sweep_killed_after_some_deletes_is_finished_by_the_next_run(sweep_host, quiet_emulator: Emulator, stack: dict):
    """The host is killed (SIGKILL: a crash, not a stop) once ACS has seen three of its deletes,
    observed at the emulator, not after a guessed time. The next run on a new host finishes."""
    host = sweep_host("sweep-killed", CLEANUP_CONCURRENCY="1")
    doomed = host.users_with_identities(10)
    ids = {cid for _, cid in doomed}
    host.mark([u.app_user_id for u, _ in doomed])
    quiet_emulator.configure(latencyMs=500)
    deletes = quiet_emulator.calls("deleteIdentity")
    assert requests.post(f"{host.host.base}/admin/functions/cleanup_deleted_users", json={"input": ""}, timeout=30).status_code == 202
    deadline = time.monotonic() + 60
    while quiet_emulator.calls("deleteIdentity") - deletes < 3:
        assert time.monotonic() < deadline, "the sweep never started deleting"
        time.sleep(0.02)
    host.host.proc.send_signal(signal.SIGKILL)
    host.host.proc.wait(10)
    quiet_emulator.configure(latencyMs=None)
    remaining = ids & quiet_emulator.identities()
    assert remaining and len(remaining) <= 7, "the kill should land after three deletes and before the last"
    assert "cleanup found=" not in host.host.log_text(), "the killed run must not have finished"

    rerun = sweep_host("sweep-rerun", IDENTITY_TABLE_NAME=host.table_name)
    # (the delete in flight at the kill may still land at ACS; starting the new host outlasts it)
    remaining = ids & quiet_emulator.identities()
    summary = rerun.sweep()
    assert summary["failed"] == 0 and summary["left"] == 0 and summary["found"] == 10
    assert summary["deleted"] == len(remaining), "the rerun deletes exactly what the killed run had not"
    assert summary["deleted"] + summary["already_gone"] == 10, summary
    assert not ids & quiet_emulator.identities()
    assert host.mappings() == {}
    assert all(t.get("SweptAt") for t in host.tombstones().values())
