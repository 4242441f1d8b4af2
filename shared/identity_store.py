"""The app-user → ACS-identity mapping and the deleted-user tombstones, in Azure Table Storage.

This module knows Table Storage and nothing of HTTP or ACS. Schema (one table, IDENTITY_TABLE_NAME):

- mapping:   PartitionKey = key(appUserId), RowKey = "identity";
             AppUserId, CommunicationUserId, CreatedAt, LastSeenAt, LastSeenKept, RevokedAt?
             (LastSeenKept = true: LastSeenAt is kept current, at most a day stale, on every use;
             rows without it were written when last-seen was only kept with inactivity cleanup
             on, so their LastSeenAt says nothing and they are never judged inactive.
             RevokedAt: when the user's tokens were last revoked, so every instance stops handing
             out tokens issued before it.)
- tombstone: PartitionKey = "tombstones", RowKey = key(appUserId); AppUserId, MarkedAt, SweptAt?
- revocation: PartitionKey = "revocations", RowKey = <microseconds since epoch, 20 digits>-<key>;
             CommunicationUserId, RevokedAt (the sweep removes rows older than a day)
- guest:     PartitionKey = "guests", RowKey = <communication user id>; ExpiresAt, CreatedAt
             (a Teams meeting guest's identity, written before its token is handed out: ACS
             cannot list identities, so this row is how the sweep finds it once ExpiresAt passed)
- unmapped:  PartitionKey = "unmapped", RowKey = <communication user id>; Reason, CreatedAt
             (an identity nothing maps: a new one whose mapping write and delete both failed, or
             one a repair stopped mapping because another resource owns it; the sweep deletes it)
- intent:    PartitionKey = "intents", RowKey = <client request id of a create>; CreatedAt
             (written before a create, removed once it is mapped or deleted; the sweep reports
             and removes old ones: each is a create whose outcome nobody learnt)

A mapping is a point read (one partition per user, so no hot partition); all tombstones share one
partition so that a sweep lists only deleted users and marking is a batch transaction. An app
backend may write tombstones directly with this schema (SweptAt absent).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableTransactionError

from . import telemetry
from .credentials import get_credential
from .errors import DependencyUnavailable
from .retry import pipeline_options
from .settings import Settings

log = logging.getLogger(__name__)


class _ConnectionLost(DependencyUnavailable):
    """Table Storage could not be reached on the connection the request went out on (azure-core's
    ServiceRequestError): nothing, or nothing answered, came back."""
T = TypeVar("T")

MAPPING_ROW = "identity"
TOMBSTONE_PARTITION = "tombstones"
#: One row per revocation (and per deleted identity), keyed by when, so that every instance can
#: learn of the revocations made elsewhere with one query per REVOCATION_CHECK_SECONDS instead of
#: one read per user.
REVOCATION_PARTITION = "revocations"
#: Guest identities, one row each, so none is lost. A user's partition key is an escaped app user
#: id, which always holds "|" (or starts "sha256-"), so it can never be this one.
GUEST_PARTITION = "guests"
#: Identities ACS made (or a repair stopped mapping) that nothing else records: one row each, so
#: the sweep keeps trying to delete them (shared/unmapped.py, shared/cleanup.py).
UNMAPPED_PARTITION = "unmapped"
#: Creates under way: written before an identity create, removed once it is mapped or deleted, so
#: a create lost with its host (killed mid-way) leaves a trace the sweep reports.
INTENT_PARTITION = "intents"
_MAX_KEY_CHARS = 512
_IDENTITY_FIELDS = ["AppUserId", "CommunicationUserId"]


def table_key(app_user_id: str) -> str:
    """A Table key for any user id: percent-escapes what keys forbid (/ \\ # ? control characters)
    and '%' itself, so distinct ids never collide; very long ids fall back to a SHA-256 digest."""
    escaped = quote(app_user_id, safe="!$&'()*+,;=:@-._~|")
    if len(escaped) <= _MAX_KEY_CHARS:
        return escaped
    return "sha256-" + hashlib.sha256(app_user_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Mapping:
    """One app user's ACS identity. ``etag`` makes repairs and deletes conditional."""

    app_user_id: str
    communication_user_id: str
    etag: str
    last_seen: datetime | None
    #: LastSeenAt is trustworthy (kept on every use); see the module docstring.
    last_seen_kept: bool = False
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Tombstone:
    """An app user the app has deleted; ``swept_at`` once the sweep has deleted their identity."""

    app_user_id: str
    row_key: str
    marked_at: datetime | None
    swept_at: datetime | None


@dataclass(frozen=True)
class UnmappedRecord:
    """An ACS identity nothing maps, kept for the sweep to delete, and why it is here."""

    communication_user_id: str
    reason: str
    created_at: datetime | None


@dataclass(frozen=True)
class CreateIntent:
    """A create that was begun: its client request id (x-ms-client-request-id) and when."""

    request_id: str
    created_at: datetime | None


@dataclass(frozen=True)
class GuestRecord:
    """A Teams meeting guest's identity and when its token expires (then the sweep deletes it)."""

    communication_user_id: str
    expires_at: datetime


def _moment(entity: Any, name: str) -> datetime | None:
    value = entity.get(name)
    return value if isinstance(value, datetime) else None


def _mapping(entity: Any) -> Mapping:
    return Mapping(
        app_user_id=entity["AppUserId"],
        communication_user_id=entity["CommunicationUserId"],
        etag=entity.metadata["etag"],
        last_seen=_moment(entity, "LastSeenAt"),
        last_seen_kept=entity.get("LastSeenKept") is True,
        revoked_at=_moment(entity, "RevokedAt"),
    )


def _tombstone(entity: Any) -> Tombstone | None:
    """A tombstone row as written by the service or by an app's backend; None when it names no
    user (a row like that is skipped and logged, never allowed to stop a sweep)."""
    app_user_id = entity.get("AppUserId")
    if not isinstance(app_user_id, str) or not app_user_id:
        return None

    def moment(name: str) -> datetime | None:
        value = entity.get(name)
        return value if isinstance(value, datetime) else None

    return Tombstone(app_user_id, entity["RowKey"], moment("MarkedAt"), moment("SweptAt"))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


class IdentityStore:
    """The mapping table through one long-lived async TableClient, created on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None
        self._table_ready = False

    def _table(self) -> Any:
        if self._client is None:
            from azure.data.tables.aio import TableClient

            options = pipeline_options(self._settings.dependency_timeout_seconds, dependency="tables")
            if self._settings.tables_endpoint:
                self._client = TableClient(
                    endpoint=self._settings.tables_endpoint,
                    table_name=self._settings.identity_table,
                    credential=get_credential(),
                    **options,
                )
            else:
                self._client = TableClient.from_connection_string(
                    self._settings.tables_connection_string, table_name=self._settings.identity_table, **options
                )
        return self._client

    async def _call(self, operation: str, call: Callable[[Any], Awaitable[T]]) -> T:
        """Run one table operation inside the time budget; a missing table is created once
        (Bicep creates it in Azure; local emulators start empty)."""
        try:
            try:
                async with asyncio.timeout(self._settings.dependency_timeout_seconds):
                    with telemetry.dependency("tables", operation):
                        return await call(self._table())
            except (ResourceNotFoundError, TableTransactionError) as error:  # a batch's error says so too
                if self._table_ready or getattr(error, "error_code", None) != "TableNotFound":
                    raise
                await self._create_table()
                async with asyncio.timeout(self._settings.dependency_timeout_seconds):
                    with telemetry.dependency("tables", operation):
                        return await call(self._table())
        except (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError, TableTransactionError):
            raise
        except asyncio.TimeoutError:
            log.warning("table %s timed out", operation)
            raise DependencyUnavailable("Table Storage did not answer in time.") from None
        except ClientAuthenticationError as error:
            log.warning("table %s: credentials refused or unavailable (%s)", operation, type(error).__name__)
            raise DependencyUnavailable("Table Storage could not be reached with the service's identity.") from None
        except ServiceRequestError as error:
            log.warning("table %s failed: %s", operation, type(error).__name__)
            raise _ConnectionLost("Table Storage is unavailable; try again shortly.") from None
        except (HttpResponseError, ServiceResponseError, OSError, ValueError) as error:
            log.warning("table %s failed: %s", operation, type(error).__name__)
            raise DependencyUnavailable("Table Storage is unavailable; try again shortly.") from None

    async def _create_table(self) -> None:
        try:
            await self._table().create_table()
        except ResourceExistsError:
            pass
        self._table_ready = True

    async def get(self, app_user_id: str, identity_only: bool = False) -> Mapping | None:
        """Point read of the user's mapping. ``identity_only`` reads just the identity (and the
        etag, always there): the sweep of a deleted user needs no dates, and parsing them is a
        good part of a read's CPU."""
        select = _IDENTITY_FIELDS if identity_only else None
        try:
            entity = await self._call("get", lambda t: t.get_entity(table_key(app_user_id), MAPPING_ROW, select=select))
        except ResourceNotFoundError:
            return None
        return _mapping(entity)

    async def is_tombstoned(self, app_user_id: str) -> bool:
        try:
            await self._call("get_tombstone", lambda t: t.get_entity(TOMBSTONE_PARTITION, table_key(app_user_id), select=["AppUserId"]))
        except ResourceNotFoundError:
            return False
        return True

    async def lookup(self, app_user_id: str) -> tuple[Mapping | None, bool]:
        """The mapping and whether the user is tombstoned, read concurrently (one latency)."""
        mapping, tombstoned = await asyncio.gather(self.get(app_user_id), self.is_tombstoned(app_user_id))
        return mapping, tombstoned

    @staticmethod
    def _new_row(app_user_id: str, communication_user_id: str) -> dict[str, Any]:
        now = _now()
        return {
            "PartitionKey": table_key(app_user_id),
            "RowKey": MAPPING_ROW,
            "AppUserId": app_user_id,
            "CommunicationUserId": communication_user_id,
            "CreatedAt": now,
            "LastSeenAt": now,
            "LastSeenKept": True,
        }

    async def _is_ours(self, app_user_id: str, communication_user_id: str) -> bool:
        """After a conditional write was refused: whether the row names our identity anyway.
        The Tables SDK re-sends a write whose reply was lost (a 5xx or a dropped connection), and
        the re-send of a write that had succeeded is refused (409 or 412): the row then holds our
        identity, and taking it for a lost race would delete the identity it maps."""
        current = await self.get(app_user_id)
        return current is not None and current.communication_user_id == communication_user_id

    async def insert(self, app_user_id: str, communication_user_id: str) -> bool:
        """Create the mapping only if none exists; False when another call won the race."""
        entity = self._new_row(app_user_id, communication_user_id)
        for attempt in range(2):
            try:
                await self._call("insert", lambda t: t.create_entity(entity))
            except _ConnectionLost:
                if attempt:  # sent again once, as record_guest does: a refusal then is read back below
                    raise
                continue
            except ResourceExistsError:
                if await self._is_ours(app_user_id, communication_user_id):
                    log.info("mapping insert was refused as existing but holds our identity: an earlier reply was lost")
                    return True
                return False
            return True
        return True  # not reached: the loop returns or raises

    async def replace(self, mapping: Mapping, communication_user_id: str) -> bool:
        """Point the user at a new identity, only if the mapping still names the identity read.
        A refused conditional replace is read back: a row that still names the gone identity
        only changed beside it (a last-seen write or a revocation started before ACS answered),
        so the replace is tried again with its new etag rather than throwing the new identity
        away; a row naming another identity (a concurrent repair) or none means the race is lost."""
        etag = mapping.etag
        for _ in range(3):
            entity = self._new_row(mapping.app_user_id, communication_user_id)
            try:
                await self._call(
                    "replace",
                    lambda t, e=entity, tag=etag: t.update_entity(
                        e, mode="replace", etag=tag, match_condition=MatchConditions.IfNotModified
                    ),
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                current = await self.get(mapping.app_user_id)
                if current is None:
                    return False
                if current.communication_user_id == communication_user_id:
                    return True  # our own write, re-sent after a lost reply
                if current.communication_user_id != mapping.communication_user_id:
                    return False
                etag = current.etag
                continue
            return True
        return False

    async def remove(self, mapping: Mapping) -> bool:
        """Delete the mapping only if unchanged since read; False if it changed or is gone."""
        try:
            await self._call(
                "remove",
                lambda t: t.delete_entity(
                    table_key(mapping.app_user_id), MAPPING_ROW, etag=mapping.etag, match_condition=MatchConditions.IfNotModified
                ),
            )
        except ResourceModifiedError:
            return False
        except ResourceNotFoundError:
            return False
        return True

    async def touch(self, app_user_id: str, etag: str) -> str | None:
        """Record that the user was seen, only if the row is unchanged since it was read (so two
        instances that read the same stale LastSeenAt write it once). The new etag, or None when
        the row changed or went (the caller reads it again before deciding anew)."""
        entity = {"PartitionKey": table_key(app_user_id), "RowKey": MAPPING_ROW, "LastSeenAt": _now(), "LastSeenKept": True}
        try:
            result = await self._call(
                "touch", lambda t: t.update_entity(entity, mode="merge", etag=etag, match_condition=MatchConditions.IfNotModified)
            )
        except (ResourceNotFoundError, ResourceModifiedError):
            return None
        return (result or {}).get("etag")

    async def record_revocation(
        self, app_user_id: str, communication_user_id: str, revoked_at: datetime, on_mapping: bool = True
    ) -> None:
        """Record when the identity's tokens were revoked (or it was deleted): an event row that
        other instances poll, and (``on_mapping``) RevokedAt on the mapping row, which a cold
        read sees."""
        event = {
            "PartitionKey": REVOCATION_PARTITION,
            "RowKey": f"{_micros(revoked_at):020d}-{table_key(app_user_id)}",
            "CommunicationUserId": communication_user_id,
            "RevokedAt": revoked_at,
        }
        await self._call("record_revocation_event", lambda t: t.upsert_entity(event, mode="replace"))
        if not on_mapping:
            return
        entity = {"PartitionKey": table_key(app_user_id), "RowKey": MAPPING_ROW, "RevokedAt": revoked_at}
        try:
            await self._call("record_revocation", lambda t: t.update_entity(entity, mode="merge"))
        except ResourceNotFoundError:
            pass  # deleted meanwhile: the event row is what matters then

    async def revocations_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """(identity, when revoked) of every revocation recorded at or after ``since``."""
        found: list[tuple[str, datetime]] = []
        async for page in self._pages("list_revocations", "PartitionKey eq @p and RowKey ge @r",
                                      {"p": REVOCATION_PARTITION, "r": f"{_micros(since):020d}"}, 1000):
            for entity in page:
                moment = _moment(entity, "RevokedAt")
                identity = entity.get("CommunicationUserId")
                if moment is not None and isinstance(identity, str):
                    found.append((identity, moment))
        return found

    async def trim_revocations(self, before: datetime) -> int:
        """Remove revocation rows older than ``before`` (no instance reuses a token that old);
        returns how many."""
        removed = 0
        async for page in self._pages("list_old_revocations", "PartitionKey eq @p and RowKey lt @r",
                                      {"p": REVOCATION_PARTITION, "r": f"{_micros(before):020d}"}, 100):
            operations = [("delete", {"PartitionKey": REVOCATION_PARTITION, "RowKey": e["RowKey"]}) for e in page]
            try:
                await self._call("trim_revocations", lambda t, ops=operations: t.submit_transaction(ops))
            except TableTransactionError:
                continue  # removed meanwhile by another sweep; the next run finishes
            removed += len(operations)
        return removed

    async def mark_deleted(self, app_user_ids: list[str]) -> int:
        """Upsert tombstones in batch transactions (one partition, at most 100 per batch)."""
        unique = list(dict.fromkeys(app_user_ids))
        now = _now()
        for start in range(0, len(unique), 100):
            operations = [
                ("upsert", {"PartitionKey": TOMBSTONE_PARTITION, "RowKey": table_key(u), "AppUserId": u, "MarkedAt": now}, {"mode": "replace"})
                for u in unique[start:start + 100]
            ]
            await self._call("mark_deleted", lambda t, ops=operations: t.submit_transaction(ops))
        return len(unique)

    async def tombstone_pages(self, page_size: int = 1000) -> AsyncIterator[list[Tombstone]]:
        """Every tombstone, a page at a time."""
        async for page in self._pages("list_tombstones", "PartitionKey eq @p", {"p": TOMBSTONE_PARTITION}, page_size):
            tombstones = [_tombstone(e) for e in page]
            unreadable = tombstones.count(None)
            if unreadable:
                log.error("skipped %d tombstone rows without an AppUserId string", unreadable)
            yield [t for t in tombstones if t is not None]

    async def _pages(self, operation: str, query: str, parameters: dict[str, Any], page_size: int) -> AsyncIterator[list[Any]]:
        """A query's results a page at a time, following continuation tokens, each page read
        inside the time budget."""
        continuation: Any = None
        while True:
            async def fetch(t: Any, token: Any = continuation) -> tuple[list[Any], Any]:
                pages = t.query_entities(query, parameters=parameters, results_per_page=page_size).by_page(
                    continuation_token=token
                )
                try:
                    page = [e async for e in await pages.__anext__()]
                except StopAsyncIteration:
                    return [], None
                return page, pages.continuation_token

            try:
                page, continuation = await self._call(operation, fetch)
            except ResourceNotFoundError:
                return
            if page:
                yield page
            if not continuation:
                return

    async def inactive_mapping_pages(self, seen_before: datetime, page_size: int = 1000) -> AsyncIterator[list[Mapping]]:
        """Mappings whose kept LastSeenAt is before ``seen_before`` (a table scan: only used when
        inactivity cleanup is switched on). Rows whose last-seen was not kept are never listed."""
        async for page in self._pages("list_inactive", "RowKey eq @r and LastSeenKept eq true and LastSeenAt lt @t",
                                      {"r": MAPPING_ROW, "t": seen_before}, page_size):
            yield [_mapping(e) for e in page]

    async def retire_tombstones(self, swept: list[Tombstone], removed: list[Tombstone]) -> int:
        """Mark tombstones swept and remove expired ones in one batch transaction (they share a
        partition; at most 100). If the batch fails (a tombstone changed or went meanwhile), each
        is done on its own. Returns the number of table operations it took."""
        operations: list[Any] = [
            ("update", {"PartitionKey": TOMBSTONE_PARTITION, "RowKey": t.row_key, "SweptAt": _now()}, {"mode": "merge"})
            for t in swept
        ] + [("delete", {"PartitionKey": TOMBSTONE_PARTITION, "RowKey": t.row_key}) for t in removed]
        if not operations:
            return 0
        try:
            await self._call("retire_tombstones", lambda t: t.submit_transaction(operations))
            return 1
        except TableTransactionError:
            for tombstone in swept:
                await self.mark_swept(tombstone)
            for tombstone in removed:
                await self.remove_tombstone(tombstone)
            return 1 + len(operations)

    async def mark_swept(self, tombstone: Tombstone) -> None:
        entity = {"PartitionKey": TOMBSTONE_PARTITION, "RowKey": tombstone.row_key, "SweptAt": _now()}
        try:
            await self._call("mark_swept", lambda t: t.update_entity(entity, mode="merge"))
        except ResourceNotFoundError:
            pass

    async def remove_tombstone(self, tombstone: Tombstone) -> None:
        try:
            await self._call("remove_tombstone", lambda t: t.delete_entity(TOMBSTONE_PARTITION, tombstone.row_key))
        except ResourceNotFoundError:
            pass

    async def record_guest(self, communication_user_id: str, expires_at: datetime) -> None:
        """Record a guest identity and its token's expiry, before the token is handed out. An
        insert refused as existing is our own, re-sent after a lost reply (the key is the new
        identity's id, which nobody else has)."""
        entity = {"PartitionKey": GUEST_PARTITION, "RowKey": communication_user_id, "ExpiresAt": expires_at, "CreatedAt": _now()}
        for attempt in range(2):
            try:
                await self._call("record_guest", lambda t: t.create_entity(entity))
                return
            except ResourceExistsError:
                return
            except _ConnectionLost:
                # azure-core never re-sends a POST whose connection failed (an insert is a POST),
                # and a pooled connection the server closed while idle fails just so. Re-sending
                # this insert is safe: if the first did land, the second is refused as existing.
                if attempt:
                    raise
            except ResourceNotFoundError:
                # The table itself is missing (a fresh local emulator; Bicep creates it in Azure):
                # create_entity's error carries no error code for _call to tell that apart.
                if attempt:
                    raise
                try:
                    await self._call("create_table", lambda t: t.create_table())
                except ResourceExistsError:
                    pass

    async def expired_guest_pages(self, expired_before: datetime, page_size: int = 1000) -> AsyncIterator[list[GuestRecord]]:
        """Guest identities whose tokens expired before ``expired_before``, a page at a time (one
        partition; its size is bounded by the guest budgets times the time between sweeps)."""
        async for page in self._pages("list_expired_guests", "PartitionKey eq @p and ExpiresAt lt @t",
                                      {"p": GUEST_PARTITION, "t": expired_before}, page_size):
            yield [
                GuestRecord(e["RowKey"], e["ExpiresAt"]) for e in page if isinstance(e.get("ExpiresAt"), datetime)
            ]

    async def remove_guest(self, guest: GuestRecord) -> None:
        """Forget a guest identity the sweep has deleted at ACS (idempotent)."""
        try:
            await self._call("remove_guest", lambda t: t.delete_entity(GUEST_PARTITION, guest.communication_user_id))
        except ResourceNotFoundError:
            pass

    async def record_unmapped(self, communication_user_id: str, reason: str) -> None:
        """Record an identity nothing maps, for the sweep to delete (idempotent)."""
        entity = {"PartitionKey": UNMAPPED_PARTITION, "RowKey": communication_user_id, "Reason": reason, "CreatedAt": _now()}
        await self._call("record_unmapped", lambda t: t.upsert_entity(entity, mode="merge"))

    async def unmapped_pages(self, page_size: int = 1000) -> AsyncIterator[list[UnmappedRecord]]:
        async for page in self._pages("list_unmapped", "PartitionKey eq @p", {"p": UNMAPPED_PARTITION}, page_size):
            yield [UnmappedRecord(e["RowKey"], str(e.get("Reason") or ""), _moment(e, "CreatedAt")) for e in page]

    async def remove_unmapped(self, communication_user_id: str) -> None:
        try:
            await self._call("remove_unmapped", lambda t: t.delete_entity(UNMAPPED_PARTITION, communication_user_id))
        except ResourceNotFoundError:
            pass

    async def remove_rows(self, operation: str, partition: str, row_keys: list[str]) -> tuple[int, int]:
        """Delete rows of one partition, 100 per batch transaction (one request instead of one
        each). Returns (table operations it took, rows it could not remove).

        A batch fails as a whole when one row is gone already (removed by another sweep: the
        batch answers 404): its rows are then deleted one by one, a missing one counting as done.
        Any other failure (Table Storage busy, down or slow, or the answer lost after the batch
        was applied) leaves the batch's rows for the next run and goes on with the next batch:
        one failed request neither ends the sweep nor is redone as 100 requests to a service that
        is struggling. The caller counts the rows not removed."""
        operations = kept = 0
        for start in range(0, len(row_keys), 100):
            keys = row_keys[start:start + 100]
            batch = [("delete", {"PartitionKey": partition, "RowKey": key}) for key in keys]
            operations += 1
            try:
                await self._call(operation, lambda t, ops=batch: t.submit_transaction(ops))
                continue
            except TableTransactionError as error:
                if getattr(error, "status_code", None) != 404:
                    log.warning("table %s: a batch was refused (%s); its %d rows are left for the next run",
                                operation, getattr(error, "error_code", None) or type(error).__name__, len(keys))
                    kept += len(keys)
                    continue
            except DependencyUnavailable:
                kept += len(keys)  # _call logged why; the rows may or may not be gone: the next run sees
                continue
            for key in keys:
                operations += 1
                try:
                    await self._call(operation, lambda t, key=key: t.delete_entity(partition, key))
                except ResourceNotFoundError:
                    pass
                except DependencyUnavailable:
                    kept += 1
        return operations, kept

    async def record_intent(self, request_id: str) -> None:
        """Record that a create is about to be sent (no user id: the request id is the trace)."""
        entity = {"PartitionKey": INTENT_PARTITION, "RowKey": request_id, "CreatedAt": _now()}
        await self._call("record_intent", lambda t: t.upsert_entity(entity, mode="replace"))

    async def intent_pages(self, page_size: int = 1000) -> AsyncIterator[list[CreateIntent]]:
        async for page in self._pages("list_intents", "PartitionKey eq @p", {"p": INTENT_PARTITION}, page_size):
            yield [CreateIntent(e["RowKey"], _moment(e, "CreatedAt")) for e in page]

    async def remove_intent(self, request_id: str) -> None:
        try:
            await self._call("remove_intent", lambda t: t.delete_entity(INTENT_PARTITION, request_id))
        except ResourceNotFoundError:
            pass

    async def ping(self) -> None:
        """A cheap read proving the table is reachable with the service's identity."""
        try:
            await self._call("ping", lambda t: t.get_entity(TOMBSTONE_PARTITION, "~health", select=["PartitionKey"]))
        except ResourceNotFoundError:
            pass

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
