"""The sweep's one summary line says what it did, and the numbers are true: every deleted
identity is a delete ACS received, users who never had one are already gone, and tombstones kept
within their retention are counted as retained on later runs."""

from __future__ import annotations

from tests.conftest import Emulator, expect_error, new_user


def test_summary_counts_deleted_already_gone_and_untouched_users(sweep_host, emulator: Emulator):
    host = sweep_host("sweep-summary")
    doomed = host.users_with_identities(4)
    kept = host.users_with_identities(2)
    never_had_one = [new_user() for _ in range(3)]
    assert host.mark([u.app_user_id for u, _ in doomed] + [u.app_user_id for u in never_had_one]).json() == {"marked": 7, "matched": 4}

    deletes = emulator.calls("deleteIdentity")
    summary = host.sweep()
    assert summary == {"dry_run": False, "found": 7, "deleted": 4, "already_gone": 3, "retained": 0, "failed": 0,
                       "left": 0, "inactive": 0}
    assert emulator.calls("deleteIdentity") - deletes == 4, "each deleted identity is one delete at ACS, no more"
    live = emulator.identities()
    assert not {cid for _, cid in doomed} & live
    assert {cid for _, cid in kept} <= live
    mappings = host.mappings()
    assert set(mappings) == {u.app_user_id for u, _ in kept}
    tombstones = host.tombstones()
    assert set(tombstones) == {u.app_user_id for u, _ in doomed} | {u.app_user_id for u in never_had_one}
    assert all(t.get("SweptAt") is not None for t in tombstones.values()), "every tombstone is marked swept"

    # The next run re-checks them: nothing left to delete, all seven retained (24 h by default).
    deletes = emulator.calls("deleteIdentity")
    assert host.sweep() == {"dry_run": False, "found": 7, "deleted": 0, "already_gone": 0, "retained": 7, "failed": 0,
                            "left": 0, "inactive": 0}
    assert emulator.calls("deleteIdentity") == deletes
    expect_error(host.api.token(doomed[0][0], fresh=True), 403, "AccountDeleted")


def test_dry_run_reports_what_it_would_delete_and_changes_nothing(sweep_host, emulator: Emulator):
    host = sweep_host("sweep-dry-run", CLEANUP_DRY_RUN="true")
    doomed = host.users_with_identities(3)
    gone = new_user()
    host.mark([u.app_user_id for u, _ in doomed] + [gone.app_user_id])
    deletes = emulator.calls("deleteIdentity")
    summary = host.sweep()
    assert summary == {"dry_run": True, "found": 4, "deleted": 3, "already_gone": 1, "retained": 0, "failed": 0,
                       "left": 0, "inactive": 0}
    assert emulator.calls("deleteIdentity") == deletes, "a dry run must not delete at ACS"
    assert {cid for _, cid in doomed} <= emulator.identities()
    assert set(host.mappings()) == {u.app_user_id for u, _ in doomed}
    assert all(t.get("SweptAt") is None for t in host.tombstones().values()), "a dry run must not mark tombstones swept"
