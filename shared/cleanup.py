"""The sweep that deletes the ACS identities of deleted app users.

ACS cannot list identities, so an identity whose mapping is lost is an orphan forever: the sweep
therefore always deletes in the order identity → mapping → tombstone. A crash between any two
steps leaves something the next run finds again and finishes (ACS's 404 counts as done).

Tombstones are kept, marked swept, for CLEANUP_TOMBSTONE_RETENTION_HOURS: while one exists the
token service refuses the user, so a request that raced the sweep cannot quietly give a deleted
account a new identity; every later sweep re-checks the mapping until the tombstone goes.

Teams meeting guests' identities (shared/guest_service.py) go once their tokens have expired, read
from their rows in the ``guests`` partition: identity first, then the row, counted apart from the
users' results (``guests_deleted``, ``guests_left``, ``guests_failed``).

Optionally (CLEANUP_INACTIVE_DAYS) users not seen for that many days lose their identity too,
without a tombstone: they are not deleted, so coming back simply gives them a new identity.
Only rows whose LastSeenAt is kept current (LastSeenKept) are ever judged, and each is read again
right before its identity is deleted: a user seen since the scan keeps it. ACS deletion cannot be
undone, so a row whose last-seen cannot be trusted is left alone.

A tombstone is honoured only when its RowKey is the key the token service derives from its
AppUserId (a backend that escaped the id differently wrote a tombstone the service never sees,
so sweeping it would delete an identity the user gets back at once, every run): such rows are
logged and skipped. A tombstone is retired only once the user's mapping is gone.

The sweep's cost grows with the tombstones, not with all users (they share one partition); it
runs a bounded number of workers, pauses them all on ACS's Retry-After (429/503), and stops
taking work when its time budget is spent, leaving the rest for the next run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator

from . import telemetry
from .acs_identity import AcsIdentityClient, AcsRefused
from .errors import DependencyUnavailable
from .identity_store import INTENT_PARTITION, UNMAPPED_PARTITION, GuestRecord, IdentityStore, Mapping, Tombstone, table_key
from .settings import Settings
from .token_service import user_ref

log = logging.getLogger(__name__)

_ATTEMPTS = 6
#: A guest identity goes this long after its token's expiry, not at once: ACS stamps the expiry
#: by its own clock, which may run a little behind this one.
_GUEST_EXPIRY_MARGIN = timedelta(minutes=5)
#: A create intent this old belongs to no create still under way (a late create is awaited at
#: most two minutes, its record and delete a few dependency budgets more).
_INTENT_STALE = timedelta(minutes=10)
#: An unmapped identity another resource owns is tried once per run for this long, then its row
#: goes (logged with the identity id): a resource switched for good must not be retried forever.
_UNMAPPED_RETENTION = timedelta(days=30)


@dataclass
class SweepReport:
    """What one run did; logged as one summary line."""

    dry_run: bool
    found: int = 0
    deleted: int = 0
    already_gone: int = 0
    retained: int = 0
    failed: int = 0
    left: int = 0
    inactive: int = 0
    kept_active: int = 0
    mismatched: int = 0
    #: Teams meeting guests whose tokens had expired: identities deleted (would be, in a dry
    #: run), left for the next run at the time budget, failed (counted apart from the users').
    guests_deleted: int = 0
    guests_left: int = 0
    guests_failed: int = 0
    #: Identities nothing maps (shared/unmapped.py; repairs away from another resource's
    #: identity): deleted (or found gone), and kept because another resource still owns them.
    unmapped_deleted: int = 0
    unmapped_kept: int = 0
    #: Creates whose outcome nobody learnt (their host died between the create and its record):
    #: intent rows older than _INTENT_STALE, reported once and removed; younger ones are pending.
    uncertain: int = 0
    uncertain_pending: int = 0
    table_operations: int = 0
    acs_deletes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"cleanup {'dry run ' if self.dry_run else ''}found={self.found} deleted={self.deleted} "
            f"already_gone={self.already_gone} retained={self.retained} failed={self.failed} left={self.left} "
            f"inactive={self.inactive} kept_active={self.kept_active} mismatched={self.mismatched} "
            f"guests_deleted={self.guests_deleted} guests_left={self.guests_left} guests_failed={self.guests_failed} "
            f"unmapped_deleted={self.unmapped_deleted} unmapped_kept={self.unmapped_kept} "
            f"uncertain={self.uncertain} uncertain_pending={self.uncertain_pending} "
            f"seconds={self.seconds:.1f}"
        )


@dataclass
class _Retirements:
    """Tombstones to mark swept or remove, written 100 at a time in one transaction (they share a
    partition). Losing unwritten ones to a crash is safe: the next run re-checks and retires them."""

    swept: list[Tombstone]
    removed: list[Tombstone]

    def __len__(self) -> int:
        return len(self.swept) + len(self.removed)

    def take(self) -> _Retirements:
        taken = _Retirements(self.swept, self.removed)
        self.swept, self.removed = [], []
        return taken


@dataclass
class _Pacer:
    """One shared pause: when ACS says Retry-After, every worker waits, not just the one told."""

    resume_at: float = 0.0

    def pause(self, seconds: float) -> None:
        self.resume_at = max(self.resume_at, time.monotonic() + seconds)

    async def wait(self, deadline: float) -> None:
        """Sleep out the pause, but never past ``deadline`` (the run's time budget): a Retry-After
        longer than what is left ends the run's work, left for the next run, instead of carrying
        it past the budget and the function timeout."""
        delay = min(self.resume_at, deadline) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class Sweeper:
    def __init__(self, settings: Settings, store: IdentityStore, acs: AcsIdentityClient) -> None:
        self._settings = settings
        self._store = store
        self._acs = acs

    async def run(self) -> SweepReport:
        started = time.monotonic()
        deadline = started + self._settings.cleanup_time_budget_seconds
        report = SweepReport(dry_run=self._settings.cleanup_dry_run)
        queue: asyncio.Queue[Tombstone | Mapping | None] = asyncio.Queue(maxsize=self._settings.cleanup_concurrency * 4)
        pacer = _Pacer()
        retirements = _Retirements([], [])
        workers = [
            asyncio.create_task(self._work(queue, pacer, deadline, report, retirements))
            for _ in range(self._settings.cleanup_concurrency)
        ]
        try:
            async for page in self._work_pages():
                report.table_operations += 1
                report.found += len(page)
                if time.monotonic() >= deadline:
                    # Out of time: this page and any after it are the next run's (not listed
                    # further, so a large backlog cannot push the run past the function timeout).
                    report.left += len(page)
                    log.info("cleanup time budget spent; more tombstones may remain for the next run")
                    break
                for item in page:
                    await queue.put(item)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
            await self._retire(retirements.take(), report)
        await self._sweep_guests(report, deadline)
        await self._sweep_unmapped(report, deadline)
        await self._report_intents(report)
        await self._trim_revocations()
        report.seconds = time.monotonic() - started
        log.info(report.summary())
        telemetry.record_sweep(report)
        return report

    async def _work_pages(self) -> AsyncIterator[list[Tombstone | Mapping]]:
        """Tombstones first, then (when switched on) mappings of users not seen for
        CLEANUP_INACTIVE_DAYS, a page at a time."""
        async for page in self._store.tombstone_pages(page_size=1000):
            yield page
        if self._settings.cleanup_inactive_days > 0:
            cutoff = datetime.now(timezone.utc) - timedelta(days=self._settings.cleanup_inactive_days)
            async for page in self._store.inactive_mapping_pages(cutoff, page_size=1000):
                yield page

    async def _work(
        self,
        queue: asyncio.Queue[Tombstone | Mapping | None],
        pacer: _Pacer,
        deadline: float,
        report: SweepReport,
        retirements: _Retirements,
    ) -> None:
        while (item := await queue.get()) is not None:
            for _ in range(_ATTEMPTS):
                await pacer.wait(deadline)
                if time.monotonic() >= deadline:
                    report.left += 1
                    break
                try:
                    if isinstance(item, Mapping):
                        await self._sweep_inactive(item, report)
                    else:
                        await self._sweep_one(item, report, retirements)
                    break
                except AcsRefused:  # not transient: retrying now would only stall every worker
                    log.error("ACS refused to delete one user's identity; the next run retries")
                    report.failed += 1
                    break
                except DependencyUnavailable as error:
                    pacer.pause(error.retry_after)
                except Exception:  # a worker must never die: the queue would stall the run
                    log.exception("cleanup failed on one user; the next run retries")
                    report.failed += 1
                    break
            else:
                report.failed += 1
                log.warning("cleanup could not finish one user after %d attempts; the next run retries", _ATTEMPTS)

    async def _sweep_guests(self, report: SweepReport, deadline: float) -> None:
        """Teams meeting guests whose tokens expired more than _GUEST_EXPIRY_MARGIN ago: the
        identity, then its row (a crash between leaves a row the next run finishes; ACS's answer
        for a gone identity counts as done). Bounded workers, one pause on Retry-After for all."""
        expired_before = datetime.now(timezone.utc) - _GUEST_EXPIRY_MARGIN
        gate = asyncio.Semaphore(self._settings.cleanup_concurrency)
        pacer = _Pacer()

        async def sweep(guest: GuestRecord) -> None:
            async with gate:
                for _ in range(_ATTEMPTS):
                    await pacer.wait(deadline)
                    if time.monotonic() >= deadline:
                        report.guests_left += 1
                        return
                    try:
                        if not self._settings.cleanup_dry_run:
                            report.acs_deletes += 1
                            if await self._acs.delete_identity(guest.communication_user_id):
                                telemetry.identity_deleted("guest_expired")
                            await self._store.remove_guest(guest)
                        report.guests_deleted += 1
                        return
                    except AcsRefused:
                        break
                    except DependencyUnavailable as error:
                        pacer.pause(error.retry_after)
                report.guests_failed += 1

        try:
            async for page in self._store.expired_guest_pages(expired_before, page_size=1000):
                if time.monotonic() >= deadline:
                    report.guests_left += len(page)
                    break
                await asyncio.gather(*(sweep(guest) for guest in page))
        except DependencyUnavailable:
            log.warning("could not list expired guest identities now; the next run will")

    async def _sweep_unmapped(self, report: SweepReport, deadline: float) -> None:
        """Identities recorded as unmapped (shared/unmapped.py, repairs): each tried once per run,
        deleted and its row removed; one another resource owns (IdentityNotOwned) keeps its row
        for the next run, until _UNMAPPED_RETENTION. Rows left at the time budget are the next
        run's (counted in ``left``)."""
        now = datetime.now(timezone.utc)
        try:
            async for page in self._store.unmapped_pages(page_size=1000):
                done: list[str] = []  # identities confirmed deleted (or given up): their rows go after the page
                for record in page:
                    if time.monotonic() >= deadline:
                        report.left += 1
                        continue
                    if self._settings.cleanup_dry_run:
                        report.unmapped_deleted += 1
                        continue
                    try:
                        report.acs_deletes += 1
                        outcome = await self._acs.delete_unmapped(record.communication_user_id)
                        if outcome == "not_owned":
                            expired = record.created_at is not None and now - record.created_at >= _UNMAPPED_RETENTION
                            if not expired:
                                report.unmapped_kept += 1
                                continue
                            log.error("giving up on unmapped identity %s: another ACS resource owns it",
                                      record.communication_user_id)
                        elif outcome == "deleted":
                            telemetry.identity_deleted("unmapped")
                        done.append(record.communication_user_id)
                        report.unmapped_deleted += 1
                    except DependencyUnavailable:
                        report.failed += 1  # the row stays: the next run tries again
                if done:  # a row lost to a failure here is found again: ACS then answers gone
                    operations, kept = await self._store.remove_rows("remove_unmapped", UNMAPPED_PARTITION, done)
                    report.table_operations += operations
                    report.failed += kept
        except DependencyUnavailable:
            log.warning("could not list unmapped identities now; the next run will")

    async def _report_intents(self, report: SweepReport) -> None:
        """Creates begun and never finished (their host died between ACS's answer and the
        record): each may have left an identity at ACS that nobody can find (ACS cannot list
        identities). Old ones are logged with their client request id (what Microsoft support
        can trace), counted (``uncertain``) and removed; recent ones may still be under way."""
        stale_before = datetime.now(timezone.utc) - _INTENT_STALE
        try:
            async for page in self._store.intent_pages(page_size=1000):
                stale: list[str] = []
                for intent in page:
                    if intent.created_at is not None and intent.created_at >= stale_before:
                        report.uncertain_pending += 1
                        continue
                    report.uncertain += 1
                    log.error("a create never finished (x-ms-client-request-id %s): ACS may hold an identity "
                              "nobody recorded", intent.request_id)
                    stale.append(intent.request_id)
                if stale and not self._settings.cleanup_dry_run:  # reported: their rows go, 100 per request
                    operations, kept = await self._store.remove_rows("remove_intents", INTENT_PARTITION, stale)
                    report.table_operations += operations
                    report.failed += kept
        except DependencyUnavailable:
            log.warning("could not list create intents now; the next run will")

    async def _trim_revocations(self) -> None:
        """Revocation rows only matter while a token issued before them may still be reused
        (TOKEN_REUSE_SECONDS, at most 15 minutes): a day-old one goes."""
        if self._settings.cleanup_dry_run:
            return
        try:
            await self._store.trim_revocations(datetime.now(timezone.utc) - timedelta(days=1))
        except DependencyUnavailable:
            log.warning("could not remove old revocation rows now; the next run will")

    async def _retire(self, retirements: _Retirements, report: SweepReport) -> None:
        try:
            operations = await self._store.retire_tombstones(retirements.swept, retirements.removed)
            report.table_operations += operations  # added after the await: other workers count meanwhile
        except DependencyUnavailable:  # their users are done; the next run re-checks and retires them
            log.warning("could not retire %d tombstones now; the next run will", len(retirements))

    async def _sweep_one(self, tombstone: Tombstone, report: SweepReport, retirements: _Retirements) -> None:
        """Identity, then mapping, then tombstone: each step safe to repeat."""
        now = datetime.now(timezone.utc)
        if tombstone.row_key != table_key(tombstone.app_user_id):
            log.error(
                "tombstone of user %s has a RowKey that is not the escaped AppUserId; skipped (rewrite it with "
                "the documented escaping)", user_ref(tombstone.app_user_id),
            )
            report.mismatched += 1
            return
        mapping = await self._store.get(tombstone.app_user_id, identity_only=True)
        report.table_operations += 1
        if self._settings.cleanup_dry_run:
            if mapping is None:
                report.already_gone += 1
            else:
                report.deleted += 1  # would delete
            return
        deleted = False
        for _ in range(3):
            if mapping is None:
                break
            report.acs_deletes += 1
            deleted = await self._acs.delete_identity(mapping.communication_user_id) or deleted
            removed = await self._store.remove(mapping)
            report.table_operations += 1
            if removed:
                break
            mapping = await self._store.get(tombstone.app_user_id, identity_only=True)  # changed under us: delete what it is now
            report.table_operations += 1
        else:
            if mapping is not None:  # still there after three rounds: keep the tombstone, try next run
                raise DependencyUnavailable("The mapping kept changing while it was swept.", retry_after=1)
        if deleted:
            report.deleted += 1
            telemetry.identity_deleted("sweep")
        elif tombstone.swept_at is not None:
            report.retained += 1
        else:
            report.already_gone += 1

        retention = timedelta(hours=self._settings.cleanup_tombstone_retention_hours)
        if retention <= timedelta(0) or (tombstone.swept_at is not None and now - tombstone.swept_at >= retention):
            retirements.removed.append(tombstone)
        elif tombstone.swept_at is None:
            retirements.swept.append(tombstone)
        if len(retirements) >= 100:
            await self._retire(retirements.take(), report)

    async def _sweep_inactive(self, listed: Mapping, report: SweepReport) -> None:
        """An inactive user's identity goes without a tombstone: if they come back they simply
        get a new identity. The row is read again right before the delete (the scan may be
        minutes old): a user seen since keeps their identity. Identity first, then the mapping
        (conditional on its etag): a user seen in between keeps a mapping to the deleted
        identity, which their next request repairs; no identity is ever left unmapped."""
        cutoff = datetime.now(timezone.utc) - timedelta(days=self._settings.cleanup_inactive_days)
        mapping = await self._store.get(listed.app_user_id)
        report.table_operations += 1
        if (
            mapping is None
            or mapping.communication_user_id != listed.communication_user_id
            or not mapping.last_seen_kept
            or mapping.last_seen is None
            or mapping.last_seen >= cutoff
        ):
            report.kept_active += 1
            return
        report.inactive += 1
        if self._settings.cleanup_dry_run:
            return
        report.acs_deletes += 1
        if await self._acs.delete_identity(mapping.communication_user_id):
            report.deleted += 1
            telemetry.identity_deleted("inactive")
        else:
            report.already_gone += 1
        await self._store.remove(mapping)
        report.table_operations += 1
