"""The token service: one ACS identity per app user, and tokens for it.

It knows neither HTTP nor Table Storage: it composes the identity store and the ACS client.
Guarantees it keeps:
- one identity per app user, even under concurrent first calls (in-process single flight, and a
  conditional insert across instances whose loser deletes the identity it made: no orphan);
- creating and recording an identity runs to its end even when the request that started it is
  cancelled (a request deadline): the identity is then recorded or deleted, never orphaned;
- the warm path costs one ACS call: the mapping is kept in process, and ACS's answer for an
  identity it no longer has (deleted, or another resource's) drops it and repairs the mapping;
- a failed mapping write deletes the identity just made and reports 503 (if that delete fails
  too, shared/unmapped.py deletes or records it in the background); a create is preceded by an
  intent row, so one lost with its host leaves a trace the sweep reports;
- a tombstoned (deleted) user gets no identity until the sweep has removed them;
- a token issued in the last TOKEN_REUSE_SECONDS to the same identity, scopes and lifetime is
  handed out again rather than spending ACS's issue limit; never across users or scopes, never
  when the request says no-cache, and never once the user's tokens were revoked after it was
  issued: a revocation is recorded on the mapping row and as a row of its own, and a token older
  than REVOCATION_CHECK_SECONDS is handed out again only after this instance has polled the
  revocation rows within that time (one query per instance per REVOCATION_CHECK_SECONDS, not a
  read per user or request). So no instance hands out a pre-revoke token later than
  REVOCATION_CHECK_SECONDS after the revoke was answered;
- LastSeenAt is kept current (at most a day stale, at most one write a day per user, off the
  request's path) whether or not inactivity cleanup is on;
- a per-user budget of identity creations a day (IDENTITY_CREATIONS_PER_USER_PER_DAY, per
  instance, counted in windows of 24 hours from the first creation of each), so a DELETE + POST
  loop cannot create identities without bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

from . import telemetry
from .acs_identity import AcsIdentityClient, AcsToken, CreateOutcomeUnknown, IdentityGone
from .errors import DependencyUnavailable, Forbidden, InvalidRequest, Throttled
from .identity_store import IdentityStore, Mapping
from .rate_limit import PerUserRateLimiter
from .settings import MAX_TOKEN_MINUTES, MIN_TOKEN_MINUTES, Settings
from .single_flight import SingleFlight
from .ttl_cache import TtlCache
from .unmapped import UnmappedIdentities

log = logging.getLogger(__name__)

#: How long an instance trusts its memory of a user's identity without reading the table: bounds
#: how long a delete or tombstone made through another instance can go unseen by this one when
#: every request asks for a new token (ACS's answer for a deleted identity shows it sooner).
_IDENTITY_CACHE_SECONDS = 60
#: A remembered identity this old (plus up to _IDENTITY_REFRESH_SPREAD_SECONDS, by user, so users
#: who signed up together are not checked together) is checked again in the background on its
#: user's next request, which meanwhile is served from memory. The check is one point read, the
#: tombstone; a mapping changes or goes only with an identity ACS no longer has (a repair follows
#: ACS's answer, a delete or sweep deletes the identity first), which the issue itself reveals,
#: and a revoke or delete made through any instance writes a revocation row, learnt by the
#: instance's poll that the check joins. Memory then counts from when the check (and that poll)
#: began, so the 60 s bound holds while an active user's identity never has to be read again on
#: their request's path.
_IDENTITY_REFRESH_SECONDS = 35
_IDENTITY_REFRESH_SPREAD_SECONDS = 20
_LAST_SEEN_INTERVAL = timedelta(days=1)
#: ACS stamps tokens with whole seconds (the csi claim) and may hand out the same string for two
#: identical issues within a second (../ACS_FACTS.md), so a token whose issue started less than a
#: second after a revocation may be one from before it. One more second allows for the clocks of
#: ACS and of the instances differing. Tokens are issued after this margin once a revoke is known.
_REVOCATION_MARGIN = timedelta(seconds=2)
_DAY_SECONDS = 86_400


def user_ref(app_user_id: str) -> str:
    """What logs say instead of the app user id: a short, stable, non-reversible hash."""
    return hashlib.sha256(app_user_id.encode("utf-8")).hexdigest()[:12]


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class IssuedToken:
    communication_user_id: str
    token: str
    expires_on: datetime

    def __repr__(self) -> str:
        return f"IssuedToken({self.communication_user_id}, expires_on={self.expires_on.isoformat()})"


@dataclass(frozen=True, slots=True)
class _Known:
    """What the process remembers of a user between requests, as of its last read of their row
    or its own later writes."""

    communication_user_id: str
    last_seen: datetime | None
    last_seen_kept: bool
    etag: str | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, mapping: Mapping) -> _Known:
        return cls(mapping.communication_user_id, mapping.last_seen, mapping.last_seen_kept, mapping.etag, mapping.revoked_at)


@dataclass(frozen=True, slots=True)
class _Recent:
    """A token this instance issued, with when its issue started (wall clock, to compare with a
    RevokedAt written by any instance; monotonic, for its age). Kept flat (the token's fields,
    not an AcsToken) and without a __dict__: one is held per user for TOKEN_REUSE_SECONDS."""

    started_at: datetime
    started: float
    token: str
    expires_on: datetime

    @classmethod
    def of(cls, started_at: datetime, started: float, token: AcsToken) -> _Recent:
        return cls(started_at, started, token.token, token.expires_on)

    def acs_token(self) -> AcsToken:
        return AcsToken(self.token, self.expires_on)


class TokenService:
    def __init__(self, settings: Settings, store: IdentityStore, acs: AcsIdentityClient) -> None:
        self._settings = settings
        self._store = store
        self._acs = acs
        self._check_seconds = settings.revocation_check_seconds
        self._identities: TtlCache[_Known] = TtlCache(_IDENTITY_CACHE_SECONDS, 100_000)
        self._recent_tokens: TtlCache[_Recent] = TtlCache(settings.token_reuse_seconds, 100_000)
        # Identities revoked through this instance, and when; and identities it forgot (deleted,
        # gone, tombstoned): no token issued to them before that is handed out again, even one
        # still being issued then. Only a revocation delays the next issue (see _REVOCATION_MARGIN).
        memory = settings.token_reuse_seconds + settings.dependency_timeout_seconds + 60
        self._revoked: TtlCache[datetime] = TtlCache(memory, 100_000)
        self._forgotten: TtlCache[datetime] = TtlCache(memory, 100_000)
        self._resolving: SingleFlight[tuple[str, AcsToken, tuple[str, tuple[str, ...], int, float]]] = SingleFlight()
        self._issuing: SingleFlight[AcsToken] = SingleFlight()
        # No-cache issues per flight key: the one under way, and the next one requests wait for.
        self._fresh_turns: dict[tuple[object, ...], tuple[asyncio.Future[AcsToken] | None, asyncio.Future[AcsToken] | None]] = {}
        # Revocations made through any instance, learnt by polling their rows (see _poll).
        self._polling: SingleFlight[None] = SingleFlight()
        self._polled = float("-inf")  # monotonic start of the last complete poll
        self._polled_at: datetime | None = None  # its wall-clock start
        self._poll_overlap = timedelta(seconds=settings.dependency_timeout_seconds + 5)
        self._first_poll_window = timedelta(seconds=memory)
        self._limiter = PerUserRateLimiter(settings.token_requests_per_minute)
        # Per user: when their current 24-hour window of identity creations began, and how many.
        self._creations: TtlCache[tuple[float, int]] = TtlCache(_DAY_SECONDS, 100_000)
        self._touching: set[str] = set()
        self._refreshing: set[str] = set()
        self._background: set[asyncio.Task[object]] = set()
        self._unmapped = UnmappedIdentities(store, acs)

    # -- validation -------------------------------------------------------------------------

    def token_request(self, scopes: object, minutes: object) -> tuple[tuple[str, ...], int]:
        """Validate a token request's scopes and lifetime against the settings."""
        if scopes is None:
            chosen = self._settings.default_scopes
        else:
            if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
                raise InvalidRequest("scopes must be a non-empty list of strings.", code="InvalidScope")
            unknown = sorted({s for s in scopes if s not in self._settings.allowed_scopes})
            if unknown:
                allowed = ", ".join(sorted(self._settings.allowed_scopes))
                shown = ", ".join(repr(s[:40]) for s in unknown[:5])
                raise InvalidRequest(f"Scope(s) {shown} are not allowed; allowed scopes: {allowed}.", code="InvalidScope")
            chosen = tuple(sorted(set(scopes)))
        if minutes is None:
            lifetime = self._settings.default_token_minutes
        else:
            if isinstance(minutes, bool) or not isinstance(minutes, int) or not MIN_TOKEN_MINUTES <= minutes <= MAX_TOKEN_MINUTES:
                raise InvalidRequest(
                    f"expiresInMinutes must be a whole number from {MIN_TOKEN_MINUTES} to {MAX_TOKEN_MINUTES}.",
                    code="InvalidLifetime",
                )
            lifetime = minutes
        return chosen, lifetime

    # -- tokens -----------------------------------------------------------------------------

    async def issue_token(self, app_user_id: str, scopes: tuple[str, ...], minutes: int, fresh: bool = False) -> IssuedToken:
        """A token for the caller's identity, creating the identity on the first call. ``fresh``
        (the caller sent Cache-Control: no-cache) never hands out a token issued before the
        request, on any path."""
        self._check_rate(app_user_id)
        remembered = self._identities.get_with_age(app_user_id)
        if remembered is None:
            return await self._resolving_issue(app_user_id, scopes, minutes, fresh)
        known, age = remembered
        self._note_seen(app_user_id)
        if age >= _IDENTITY_REFRESH_SECONDS:
            self._refresh_if_due(app_user_id, known, age)
        try:
            token = await self._issue_shared(app_user_id, known, scopes, minutes, fresh)
        except IdentityGone:
            log.info("identity of user %s is gone at ACS; repairing mapping", user_ref(app_user_id))
            self._forget(app_user_id, known.communication_user_id)
            return await self._resolving_issue(app_user_id, scopes, minutes, fresh)
        return IssuedToken(known.communication_user_id, token.token, token.expires_on)

    async def _issue_shared(
        self, app_user_id: str, known: _Known, scopes: tuple[str, ...], minutes: int, fresh: bool
    ) -> AcsToken:
        """Issue at ACS, sharing concurrent identical requests and recent identical tokens; a
        token or flight from before the user's last known revocation is never shared."""
        communication_user_id = known.communication_user_id
        key = (communication_user_id, scopes, minutes)
        if not fresh:
            recent = await self._reusable(app_user_id, known, key)
            if recent is not None:
                telemetry.token_reused()
                return recent
        revoked_at = self._revoked_at(app_user_id, communication_user_id)
        forgotten = self._forgotten.get(communication_user_id)

        async def issue() -> AcsToken:
            if revoked_at is not None:
                # Right after a revocation ACS may return a token from before it (same second).
                wait = (revoked_at + _REVOCATION_MARGIN - _now()).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
            started_at, started = _now(), time.monotonic()
            token = await self._acs.issue_token(communication_user_id, scopes, minutes)
            telemetry.token_issued()
            self._recent_tokens.put(key, _Recent.of(started_at, started, token))
            return token

        flight = (*key, revoked_at, forgotten)
        if fresh:
            return await self._issue_after_arrival(flight, issue)
        # Any other request joins only an issue begun in the same REVOCATION_CHECK_SECONDS window,
        # so less than that bound before it came: an issue that started before a revoke is never
        # handed to a request that comes later than the bound after the revoke was answered.
        window = int(time.monotonic() // self._check_seconds) if self._check_seconds > 0 else object()
        return await self._issuing.run((*flight, window), issue)

    async def _issue_after_arrival(self, flight: tuple[object, ...], issue: Callable[[], Awaitable[AcsToken]]) -> AcsToken:
        """A no-cache request's token: from an issue that begins after the request came. It
        never joins an issue already under way; it joins the next one, which begins as soon as
        the one under way (if any) ends, so a burst of no-cache requests costs at most two issues
        and every one of them gets a token whose issue began after it came."""
        running, waiting = self._fresh_turns.get(flight, (None, None))
        if waiting is None:
            waiting = asyncio.get_running_loop().create_task(self._fresh_turn(flight, running, issue))
            waiting.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._fresh_turns[flight] = (running, waiting)
        return await asyncio.shield(waiting)

    async def _fresh_turn(
        self, flight: tuple[object, ...], before: asyncio.Future[AcsToken] | None, issue: Callable[[], Awaitable[AcsToken]]
    ) -> AcsToken:
        if before is not None:
            await asyncio.wait([before])  # its outcome is for the requests that joined it
        self._fresh_turns[flight] = (asyncio.current_task(), None)  # begun: later requests wait for the next
        try:
            return await issue()
        finally:
            _, waiting = self._fresh_turns.get(flight, (None, None))
            if waiting is None:
                self._fresh_turns.pop(flight, None)
            else:
                self._fresh_turns[flight] = (None, waiting)

    def _revoked_at(self, app_user_id: str, communication_user_id: str) -> datetime | None:
        """The latest revocation of the identity this instance knows of (its own, or read)."""
        known = self._identities.get(app_user_id)
        moments = [m for m in (
            known.revoked_at if known is not None and known.communication_user_id == communication_user_id else None,
            self._revoked.get(communication_user_id),
        ) if m is not None]
        return max(moments) if moments else None

    async def _reusable(self, app_user_id: str, known: _Known, key: tuple[str, tuple[str, ...], int]) -> AcsToken | None:
        """A recent token that may be handed out again, or None. A token younger than
        REVOCATION_CHECK_SECONDS may be (a revocation since is less than that old); an older one
        only when this instance has polled the revocations within REVOCATION_CHECK_SECONDS and
        none of its identity since the token's issue was recorded."""
        entry = self._recent_tokens.get(key)
        if entry is None or not self._may_reuse(app_user_id, known.communication_user_id, entry):
            return None
        if time.monotonic() - entry.started <= self._check_seconds:
            return entry.acs_token()
        await self._poll()
        return entry.acs_token() if self._may_reuse(app_user_id, known.communication_user_id, entry) else None

    def _may_reuse(self, app_user_id: str, communication_user_id: str, entry: _Recent) -> bool:
        revoked_at = self._revoked_at(app_user_id, communication_user_id)
        if revoked_at is not None and entry.started_at <= revoked_at + _REVOCATION_MARGIN:
            return False
        forgotten = self._forgotten.get(communication_user_id)
        return forgotten is None or entry.started_at > forgotten

    async def _poll(self) -> None:
        """Learn the revocations recorded by every instance since the last poll: one query, at
        most once per REVOCATION_CHECK_SECONDS on this instance (concurrent requests share it).
        Each poll starts a little before the last one did, so a revocation whose row was written
        just after its recorded moment is not missed."""
        if time.monotonic() - self._polled <= self._check_seconds:
            return

        async def poll() -> None:
            started, started_at = time.monotonic(), _now()
            since = (self._polled_at or started_at - self._first_poll_window) - self._poll_overlap
            for communication_user_id, revoked_at in await self._store.revocations_since(since):
                known = self._revoked.get(communication_user_id)
                if known is None or revoked_at > known:
                    self._revoked.put(communication_user_id, revoked_at)
            self._polled, self._polled_at = started, started_at

        await self._polling.run("revocations", poll)

    async def _resolving_issue(self, app_user_id: str, scopes: tuple[str, ...], minutes: int, fresh: bool) -> IssuedToken:
        """Cold path: find or create the user's identity (one flight per user), then issue."""

        arrived, led = time.monotonic(), False

        async def resolve() -> tuple[str, AcsToken, tuple[str, tuple[str, ...], int, float]]:
            nonlocal led
            led, started = True, time.monotonic()
            communication_user_id, token = await self._find_or_create(app_user_id, scopes, minutes, fresh)
            return communication_user_id, token, (communication_user_id, scopes, minutes, started)

        communication_user_id, token, (_, for_scopes, for_minutes, started) = await self._resolving.run(app_user_id, resolve)
        if (for_scopes, for_minutes) == (scopes, minutes) and (
            led or (not fresh and arrived - started <= self._check_seconds)
        ):
            # Issued while resolving, by this call, or by the one it joined if that began less than
            # REVOCATION_CHECK_SECONDS before this request came; never for a no-cache request
            # (a flight it joined began before it came). Otherwise the identity is shared, the
            # token issued anew below.
            return IssuedToken(communication_user_id, token.token, token.expires_on)
        known = self._identities.get(app_user_id)
        if known is None or known.communication_user_id != communication_user_id:
            raise DependencyUnavailable("The identity changed while the token was issued; try again.", retry_after=1)
        try:
            token = await self._issue_shared(app_user_id, known, scopes, minutes, fresh)
        except IdentityGone:
            # Deleted between resolving and issuing (a concurrent delete): report, don't loop.
            self._forget(app_user_id, communication_user_id)
            raise DependencyUnavailable("The identity changed while the token was issued; try again.", retry_after=1) from None
        return IssuedToken(communication_user_id, token.token, token.expires_on)

    async def _find_or_create(
        self, app_user_id: str, scopes: tuple[str, ...], minutes: int, fresh: bool
    ) -> tuple[str, AcsToken]:
        """The user's identity id and a token for it, issued while resolving (so the cold path
        also costs one ACS call once the mapping is read)."""
        for _ in range(3):
            read_from = time.monotonic()
            mapping, tombstoned = await self._store.lookup(app_user_id)
            if tombstoned:
                raise Forbidden("This account was deleted; its communication identity is being removed.", code="AccountDeleted")
            if mapping is not None:
                known = _Known.of(mapping)
                self._identities.put(app_user_id, known, stored_at=read_from)
                self._note_seen(app_user_id)  # before ACS answers: a sweep may be judging the row now
                try:
                    token = await self._issue_shared(app_user_id, known, scopes, minutes, fresh)
                except IdentityGone as gone:
                    self._forget(app_user_id, mapping.communication_user_id)
                    created = await self._repair(mapping, scopes, minutes, gone.not_owned)
                    if created is None:
                        continue  # someone else changed the mapping; read it again
                    return created
                return mapping.communication_user_id, token
            created = await self._create(app_user_id, scopes, minutes)
            if created is not None:
                return created
        raise DependencyUnavailable("The identity mapping kept changing; try again.", retry_after=1)

    async def _create(self, app_user_id: str, scopes: tuple[str, ...], minutes: int) -> tuple[str, AcsToken] | None:
        """A new identity and its mapping; None when another instance inserted first (ours is deleted)."""
        created = await self._new_identity(
            app_user_id, scopes, minutes, lambda new_id: self._store.insert(app_user_id, new_id), "lost the first-call race"
        )
        if created is not None:
            log.info("created identity for user %s", user_ref(app_user_id))
        return created

    async def _repair(
        self, mapping: Mapping, scopes: tuple[str, ...], minutes: int, not_owned: bool = False
    ) -> tuple[str, AcsToken] | None:
        """The mapped identity no longer exists at ACS (deleted, or another resource's): point
        the mapping at a new one. Another resource's identity (IdentityNotOwned) may still exist
        there (ACS_ENDPOINT pointed elsewhere by mistake, then put back), so it is first recorded
        as unmapped for the sweep to delete once it can; if that record cannot be written the
        repair is refused (503), never leaving the identity recorded nowhere."""
        log.warning("mapped identity of user %s no longer exists in this ACS resource; repairing", user_ref(mapping.app_user_id))
        if not_owned:
            await self._store.record_unmapped(mapping.communication_user_id, "not_owned")
        repaired = await self._new_identity(
            mapping.app_user_id, scopes, minutes, lambda new_id: self._store.replace(mapping, new_id), "mapping changed during repair"
        )
        if repaired is not None:
            telemetry.identity_repaired()
        return repaired

    async def _new_identity(
        self,
        app_user_id: str,
        scopes: tuple[str, ...],
        minutes: int,
        record: Callable[[str], Awaitable[bool]],
        lost_race: str,
    ) -> tuple[str, AcsToken] | None:
        """Create an identity with its first token (one ACS round trip) and ``record`` it in the
        mapping; if recording fails or loses a race, the identity is deleted again.

        The create-and-record runs as a task of its own that the request only waits for: if the
        request is cancelled (its deadline passed, the client went away) while ACS is creating the
        identity or while the mapping is being written, the task still finishes, so the identity
        ends up recorded or deleted, never orphaned."""
        self._spend_creation(app_user_id, count=False)  # refuses a spent budget; counted once made
        task = asyncio.get_running_loop().create_task(self._create_and_record(app_user_id, scopes, minutes, record, lost_race))
        self._keep(task)
        return await asyncio.shield(task)

    async def _create_and_record(
        self,
        app_user_id: str,
        scopes: tuple[str, ...],
        minutes: int,
        record: Callable[[str], Awaitable[bool]],
        lost_race: str,
    ) -> tuple[str, AcsToken] | None:
        # A create intent first: a host killed between ACS's answer and the mapping write leaves
        # this row, which the sweep reports (uncertain=) with the create's client request id.
        request_id = str(uuid.uuid4())
        await self._store.record_intent(request_id)
        started_at, started = _now(), time.monotonic()
        try:
            communication_user_id, token = await self._acs.create_user_and_token(scopes, minutes, request_id=request_id)
        except CreateOutcomeUnknown:
            self._spend_creation(app_user_id, check=False)  # ACS may have made one; the intent stays
            raise
        except BaseException:
            self._drop_intent(request_id)  # refused: nothing was made
            raise
        self._spend_creation(app_user_id, check=False)  # a refused create made nothing: not counted
        telemetry.token_issued()
        try:
            recorded = await record(communication_user_id)
        except BaseException:
            await self._discard(communication_user_id, "mapping write failed")
            self._drop_intent(request_id)
            raise
        if not recorded:
            await self._discard(communication_user_id, lost_race)
            self._drop_intent(request_id)
            return None
        self._drop_intent(request_id)
        telemetry.identity_created()
        now = _now()
        self._identities.put(app_user_id, _Known(communication_user_id, now, True, None, None))
        self._recent_tokens.put((communication_user_id, scopes, minutes), _Recent.of(started_at, started, token))
        return communication_user_id, token

    async def _discard(self, communication_user_id: str, why: str) -> None:
        """Delete an identity this call made but could not map, so none is orphaned."""
        log.info("deleting unmapped new identity: %s", why)
        try:
            deleted = await self._acs.delete_identity(communication_user_id)
        except DependencyUnavailable:
            self._unmapped.keep(communication_user_id, why)  # deleted or recorded in the background
            raise
        if deleted:
            telemetry.identity_deleted("unmapped")

    def _drop_intent(self, request_id: str) -> None:
        """Remove a create's intent row once its identity is mapped, deleted or handed on, off
        the request's path (if this fails, the sweep reports the row and removes it)."""
        self._keep(asyncio.get_running_loop().create_task(self._store.remove_intent(request_id)))

    def _spend_creation(self, app_user_id: str, check: bool = True, count: bool = True) -> None:
        """Refuse a create once the user's daily budget is spent (``check``), and count one
        (``count``) against it (this instance's count). Only a create that made an identity, or
        may have (its outcome unknown), is counted: one ACS refused (a 429 in a flash crowd)
        made nothing and must not lock the user out for a day."""
        limit = self._settings.identity_creations_per_user_per_day
        if limit <= 0:
            return
        now = time.monotonic()
        window = self._creations.get(app_user_id)  # expires with the window: stored at its start
        began, spent = window if window is not None else (now, 0)
        if check and spent >= limit:
            wait = int(began + _DAY_SECONDS - now) + 1
            log.info("user %s spent their identity creations for the day", user_ref(app_user_id))
            raise Throttled(
                "Too many new communication identities for this account today; try again later.",
                retry_after=wait,
                code="TooManyIdentityCreations",
            )
        if count:
            self._creations.put(app_user_id, (began, spent + 1), stored_at=began)

    # -- identity ---------------------------------------------------------------------------

    async def identity_of(self, app_user_id: str) -> str | None:
        """The caller's ACS identity id, or None. Always the table's answer (one point read, no
        ACS call): after a delete through any instance this must say so at once."""
        mapping = await self._store.get(app_user_id)
        return mapping.communication_user_id if mapping else None

    async def revoke_tokens(self, app_user_id: str) -> bool:
        """Revoke every token issued so far to the caller's identity; False when there is none.

        ACS first, then the moment ACS answered is recorded (a revocation row every instance
        polls, and RevokedAt on the mapping row), so no token ACS issued before its revocation is
        later than it: every instance then stops handing out earlier tokens within
        REVOCATION_CHECK_SECONDS, this one at once. If the rows cannot be written the caller gets
        503 and may simply revoke again."""
        mapping = await self._store.get(app_user_id)
        if mapping is None:
            return False
        communication_user_id = mapping.communication_user_id
        self._revoked.put(communication_user_id, _now())  # nothing issued before is reused from now on
        try:
            await self._acs.revoke_tokens(communication_user_id)
        except IdentityGone:
            self._forget(app_user_id, communication_user_id)
            return False
        revoked_at = _now()
        self._revoked.put(communication_user_id, revoked_at)
        self._update_known(app_user_id, communication_user_id, revoked_at=revoked_at, etag=None)
        await self._store.record_revocation(app_user_id, communication_user_id, revoked_at)
        log.info("revoked tokens of user %s", user_ref(app_user_id))
        return True

    async def delete_identity(self, app_user_id: str) -> bool:
        """Delete the caller's ACS identity, then the mapping (a crash between the two leaves a
        mapping to a gone identity, which the next call repairs; never an orphan). If the mapping
        changed meanwhile (a repair, a last-seen write), whatever it names now goes too."""
        deleted = False
        for _ in range(3):
            mapping = await self._store.get(app_user_id)
            if mapping is None:
                return deleted
            self._forget(app_user_id, mapping.communication_user_id)
            if await self._acs.delete_identity(mapping.communication_user_id):
                telemetry.identity_deleted("user_request")
            deleted = True
            # Deleting revokes too: other instances stop reusing its tokens within the bound.
            await self._store.record_revocation(app_user_id, mapping.communication_user_id, _now(), on_mapping=False)
            if await self._store.remove(mapping):
                log.info("deleted identity of user %s", user_ref(app_user_id))
                return True
        raise DependencyUnavailable("The identity kept changing while it was deleted; try again.", retry_after=1)

    async def exchange_teams_token(self, app_user_id: str, teams_token: str, app_id: str, user_id: str) -> AcsToken:
        """Exchange a Teams user's Entra token; it counts against the caller's token limit too.
        A user the app deleted (tombstoned) gets nothing here either (one point read: this path
        is not the warm token path)."""
        self._check_rate(app_user_id)
        if await self._store.is_tombstoned(app_user_id):
            raise Forbidden("This account was deleted; it cannot exchange Teams tokens.", code="AccountDeleted")
        token = await self._acs.exchange_teams_token(teams_token, app_id, user_id)
        telemetry.token_issued("teams")
        return token

    async def mark_deleted(self, app_user_ids: list[str]) -> int:
        """Tombstone app users; the sweep deletes their identities. Local caches drop them now."""
        for app_user_id in app_user_ids:
            known = self._identities.get(app_user_id)
            if known is not None:
                self._forget(app_user_id, known.communication_user_id)
        return await self._store.mark_deleted(app_user_ids)

    # -- process memory ---------------------------------------------------------------------

    def _check_rate(self, app_user_id: str) -> None:
        wait = self._limiter.check(app_user_id)
        if wait:
            raise Throttled("Too many token requests; wait before asking again.", retry_after=int(wait))

    def _forget(self, app_user_id: str, communication_user_id: str) -> None:
        """Drop what this instance remembers of the user: their identity, and every token issued
        (or being issued) to it until now."""
        self._identities.pop(app_user_id)
        self._forgotten.put(communication_user_id, _now())

    def _keep(self, task: asyncio.Task[object]) -> None:
        """Hold a background task until it ends (asyncio keeps only weak references), and
        retrieve its outcome so a failure nobody awaits is not reported as never retrieved."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _note_seen(self, app_user_id: str) -> None:
        """Keep LastSeenAt at most a day stale, with at most one table write a day per user,
        in the background (off the request's path), whether or not inactivity cleanup is on:
        switching it on must find the truth, not the day each user was first mapped."""
        known = self._identities.get(app_user_id)
        if known is None or app_user_id in self._touching:
            return
        if known.last_seen_kept and known.last_seen is not None and _now() - known.last_seen < _LAST_SEEN_INTERVAL:
            return
        self._touching.add(app_user_id)
        self._keep(asyncio.get_running_loop().create_task(self._touch(app_user_id, known)))

    async def _touch(self, app_user_id: str, known: _Known) -> None:
        try:
            etag = known.etag
            if etag is None:  # written by this instance since its last read: read it again
                mapping = await self._store.get(app_user_id)
                if mapping is None or mapping.communication_user_id != known.communication_user_id:
                    return
                if mapping.last_seen_kept and mapping.last_seen is not None and _now() - mapping.last_seen < _LAST_SEEN_INTERVAL:
                    self._update_known(
                        app_user_id, known.communication_user_id, last_seen=mapping.last_seen, last_seen_kept=True, etag=mapping.etag
                    )
                    return
                etag = mapping.etag
            new_etag = await self._store.touch(app_user_id, etag)
            if new_etag is None:
                # The row changed since it was read (another instance's touch, a revocation, a
                # repair): read it again on the next request rather than guess.
                self._identities.pop(app_user_id)
                return
            self._update_known(app_user_id, known.communication_user_id, last_seen=_now(), last_seen_kept=True, etag=new_etag)
        except DependencyUnavailable:
            log.warning("could not record last-seen of user %s; the next request tries again", user_ref(app_user_id))
        finally:
            self._touching.discard(app_user_id)

    def _update_known(self, app_user_id: str, communication_user_id: str, **changes: object) -> None:
        """Change what is remembered of the user's identity after this instance's own write,
        keeping when it was last checked: a write says nothing of tombstones."""
        remembered = self._identities.get_with_age(app_user_id)
        if remembered is not None and remembered[0].communication_user_id == communication_user_id:
            current, age = remembered
            self._identities.put(app_user_id, replace(current, **changes), stored_at=time.monotonic() - age)  # type: ignore[arg-type]

    def _refresh_if_due(self, app_user_id: str, known: _Known, age: float) -> None:
        """Check a remembered identity again in the background once it is old enough (see
        _IDENTITY_REFRESH_SECONDS); one check per user at a time."""
        spread = (hash(app_user_id) % 1000) * (_IDENTITY_REFRESH_SPREAD_SECONDS / 1000)
        if age < _IDENTITY_REFRESH_SECONDS + spread or app_user_id in self._refreshing:
            return
        self._refreshing.add(app_user_id)
        self._keep(asyncio.get_running_loop().create_task(self._refresh(app_user_id, known)))

    async def _refresh(self, app_user_id: str, known: _Known) -> None:
        """Read the user's tombstone and poll the revocation rows (shared by the instance), then
        either forget the identity (tombstoned; or revoked or deleted through some instance
        since its row was read, so the next request reads the row again) or remember it from
        when this check began. If the check fails, the memory simply ends at its bound."""
        started = time.monotonic()
        communication_user_id = known.communication_user_id
        try:
            tombstoned, _ = await asyncio.gather(self._store.is_tombstoned(app_user_id), self._poll())
        except DependencyUnavailable:
            log.warning("could not check the identity of user %s again; the next request reads it", user_ref(app_user_id))
            return
        finally:
            self._refreshing.discard(app_user_id)
        remembered = self._identities.get_with_age(app_user_id)
        if remembered is None or remembered[0].communication_user_id != communication_user_id:
            return  # forgotten or replaced meanwhile
        current, age = remembered
        if tombstoned:
            log.info("user %s was marked deleted; forgetting their identity", user_ref(app_user_id))
            self._forget(app_user_id, communication_user_id)
            return
        revoked_at = self._revoked.get(communication_user_id)
        if revoked_at is not None and (current.revoked_at is None or revoked_at > current.revoked_at):
            self._identities.pop(app_user_id)
            return
        checked_from = min(started, self._polled)  # the poll may have begun before this check
        if checked_from > time.monotonic() - age:
            self._identities.put(app_user_id, current, stored_at=checked_from)
