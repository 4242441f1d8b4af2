"""The token service: one ACS identity per app user, and tokens for it.

It knows neither HTTP nor Table Storage: it composes the identity store and the ACS client.
Guarantees it keeps:
- one identity per app user, even under concurrent first calls (in-process single flight, and a
  conditional insert across instances whose loser deletes the identity it made: no orphan);
- the warm path costs one ACS call: the mapping is kept in process, and ACS's 404 for a deleted
  identity drops it and repairs the mapping;
- a failed mapping write deletes the identity just made and reports 503;
- a tombstoned (deleted) user gets no identity until the sweep has removed them;
- a token issued in the last TOKEN_REUSE_SECONDS to the same identity, scopes and lifetime is
  handed out again rather than spending ACS's issue limit; never across users or scopes, and
  dropped on revoke and delete.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

from .acs_identity import AcsIdentityClient, AcsToken, IdentityNotFound
from .errors import DependencyUnavailable, Forbidden, InvalidRequest, Throttled
from .identity_store import IdentityStore, Mapping
from .rate_limit import PerUserRateLimiter
from .settings import MAX_TOKEN_MINUTES, MIN_TOKEN_MINUTES, Settings
from .single_flight import SingleFlight
from .ttl_cache import TtlCache

log = logging.getLogger(__name__)

#: How long an instance trusts its memory of a user's identity without reading the table: bounds
#: how long a delete or tombstone made through another instance can go unseen by this one.
_IDENTITY_CACHE_SECONDS = 60
_LAST_SEEN_INTERVAL = timedelta(days=1)


def user_ref(app_user_id: str) -> str:
    """What logs say instead of the app user id: a short, stable, non-reversible hash."""
    return hashlib.sha256(app_user_id.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class IssuedToken:
    communication_user_id: str
    token: str
    expires_on: datetime

    def __repr__(self) -> str:
        return f"IssuedToken({self.communication_user_id}, expires_on={self.expires_on.isoformat()})"


@dataclass(frozen=True)
class _Known:
    """What the process remembers of a user between requests."""

    communication_user_id: str
    last_seen: datetime | None


class TokenService:
    def __init__(self, settings: Settings, store: IdentityStore, acs: AcsIdentityClient) -> None:
        self._settings = settings
        self._store = store
        self._acs = acs
        self._identities: TtlCache[_Known] = TtlCache(_IDENTITY_CACHE_SECONDS, 100_000)
        # (when its issue started, token); an entry that started before the identity was last
        # revoked or deleted here (``_forgotten``) is never handed out.
        self._recent_tokens: TtlCache[tuple[float, AcsToken]] = TtlCache(settings.token_reuse_seconds, 100_000)
        self._forgotten: TtlCache[float] = TtlCache(
            settings.token_reuse_seconds + settings.dependency_timeout_seconds + 60, 100_000
        )
        self._resolving: SingleFlight[str] = SingleFlight()
        self._issuing: SingleFlight[AcsToken] = SingleFlight()
        self._limiter = PerUserRateLimiter(settings.token_requests_per_minute)
        self._background: set[asyncio.Task[None]] = set()

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
        (the caller sent Cache-Control: no-cache) skips handing out a recently issued token."""
        self._check_rate(app_user_id)
        known = self._identities.get(app_user_id)
        if known is None:
            return await self._resolving_issue(app_user_id, scopes, minutes)
        if fresh:
            self._recent_tokens.pop((known.communication_user_id, scopes, minutes))
        try:
            token = await self._issue_shared(known.communication_user_id, scopes, minutes)
        except IdentityNotFound:
            log.info("identity of user %s is gone at ACS; repairing mapping", user_ref(app_user_id))
            self._forget(app_user_id, known.communication_user_id)
            return await self._resolving_issue(app_user_id, scopes, minutes)
        self._note_seen(app_user_id, known)
        return IssuedToken(known.communication_user_id, token.token, token.expires_on)

    async def _issue_shared(self, communication_user_id: str, scopes: tuple[str, ...], minutes: int) -> AcsToken:
        """Issue at ACS, sharing concurrent identical requests and recent identical tokens; a
        flight or token from before the identity's last revoke here is never shared."""
        key = (communication_user_id, scopes, minutes)
        recent = self._recent(key)
        if recent is not None:
            return recent

        async def issue() -> AcsToken:
            started = time.monotonic()
            token = await self._acs.issue_token(communication_user_id, scopes, minutes)
            self._recent_tokens.put(key, (started, token))
            return token

        return await self._issuing.run((*key, self._forgotten.get(communication_user_id)), issue)

    def _recent(self, key: tuple[str, tuple[str, ...], int]) -> AcsToken | None:
        entry = self._recent_tokens.get(key)
        if entry is None:
            return None
        started, token = entry
        forgotten = self._forgotten.get(key[0])
        return None if forgotten is not None and forgotten >= started else token

    async def _resolving_issue(self, app_user_id: str, scopes: tuple[str, ...], minutes: int) -> IssuedToken:
        """Cold path: find or create the user's identity (one flight per user), then issue."""
        first: list[AcsToken] = []

        async def resolve() -> str:
            communication_user_id, token = await self._find_or_create(app_user_id, scopes, minutes)
            first.append(token)
            return communication_user_id

        communication_user_id = await self._resolving.run(app_user_id, resolve)
        if first:  # this call resolved the identity and got its token on the way
            return IssuedToken(communication_user_id, first[0].token, first[0].expires_on)
        try:
            token = await self._issue_shared(communication_user_id, scopes, minutes)
        except IdentityNotFound:
            # Deleted between resolving and issuing (a concurrent delete): report, don't loop.
            self._forget(app_user_id, communication_user_id)
            raise DependencyUnavailable("The identity changed while the token was issued; try again.", retry_after=1) from None
        return IssuedToken(communication_user_id, token.token, token.expires_on)

    async def _find_or_create(self, app_user_id: str, scopes: tuple[str, ...], minutes: int) -> tuple[str, AcsToken]:
        """The user's identity id and a token for it, issued while resolving (so the cold path
        also costs one ACS call once the mapping is read)."""
        for _ in range(3):
            mapping, tombstoned = await self._store.lookup(app_user_id)
            if tombstoned:
                raise Forbidden("This account was deleted; its communication identity is being removed.", code="AccountDeleted")
            if mapping is not None:
                try:
                    token = await self._issue_shared(mapping.communication_user_id, scopes, minutes)
                except IdentityNotFound:
                    created = await self._repair(mapping, scopes, minutes)
                    if created is None:
                        continue  # someone else changed the mapping; read it again
                    return created
                self._remember(app_user_id, mapping)
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

    async def _repair(self, mapping: Mapping, scopes: tuple[str, ...], minutes: int) -> tuple[str, AcsToken] | None:
        """The mapped identity no longer exists at ACS: point the mapping at a new one."""
        log.warning("mapped identity of user %s no longer exists; repairing", user_ref(mapping.app_user_id))
        return await self._new_identity(
            mapping.app_user_id, scopes, minutes, lambda new_id: self._store.replace(mapping, new_id), "mapping changed during repair"
        )

    async def _new_identity(
        self,
        app_user_id: str,
        scopes: tuple[str, ...],
        minutes: int,
        record: Callable[[str], Awaitable[bool]],
        lost_race: str,
    ) -> tuple[str, AcsToken] | None:
        """Create an identity with its first token (one ACS round trip), then ``record`` it in
        the mapping. If recording fails or loses a race, the identity is deleted again: no orphan."""
        started = time.monotonic()
        communication_user_id, token = await self._acs.create_user_and_token(scopes, minutes)
        try:
            recorded = await record(communication_user_id)
        except DependencyUnavailable:
            await self._discard(communication_user_id, "mapping write failed")
            raise
        if not recorded:
            await self._discard(communication_user_id, lost_race)
            return None
        self._identities.put(app_user_id, _Known(communication_user_id, datetime.now(timezone.utc)))
        self._recent_tokens.put((communication_user_id, scopes, minutes), (started, token))
        return communication_user_id, token

    async def _discard(self, communication_user_id: str, why: str) -> None:
        """Delete an identity this call made but could not map, so none is orphaned."""
        log.info("deleting unmapped new identity: %s", why)
        try:
            await self._acs.delete_identity(communication_user_id)
        except DependencyUnavailable:
            log.error("could not delete an unmapped new identity (%s); it is orphaned", why)
            raise

    # -- identity ---------------------------------------------------------------------------

    async def identity_of(self, app_user_id: str) -> str | None:
        """The caller's ACS identity id, or None. Always the table's answer (one point read, no
        ACS call): after a delete through any instance this must say so at once."""
        mapping = await self._store.get(app_user_id)
        return mapping.communication_user_id if mapping else None

    async def revoke_tokens(self, app_user_id: str) -> bool:
        """Revoke every token issued so far to the caller's identity; False when there is none."""
        mapping = await self._store.get(app_user_id)
        if mapping is None:
            return False
        self._forget(app_user_id, mapping.communication_user_id)
        try:
            await self._acs.revoke_tokens(mapping.communication_user_id)
        except IdentityNotFound:
            return False
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
            await self._acs.delete_identity(mapping.communication_user_id)
            deleted = True
            if await self._store.remove(mapping):
                log.info("deleted identity of user %s", user_ref(app_user_id))
                return True
        raise DependencyUnavailable("The identity kept changing while it was deleted; try again.", retry_after=1)

    async def exchange_teams_token(self, app_user_id: str, teams_token: str, app_id: str, user_id: str) -> AcsToken:
        """Exchange a Teams user's Entra token; it counts against the caller's token limit too."""
        self._check_rate(app_user_id)
        return await self._acs.exchange_teams_token(teams_token, app_id, user_id)

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

    def _remember(self, app_user_id: str, mapping: Mapping) -> None:
        known = _Known(mapping.communication_user_id, mapping.last_seen)
        self._identities.put(app_user_id, known)
        self._note_seen(app_user_id, known)

    def _forget(self, app_user_id: str, communication_user_id: str) -> None:
        """Drop what this instance remembers of the user: their identity, and every token issued
        (or being issued) to it until now."""
        self._identities.pop(app_user_id)
        self._forgotten.put(communication_user_id, time.monotonic())

    def _note_seen(self, app_user_id: str, known: _Known) -> None:
        """Keep LastSeenAt at most a day stale, with at most one table write a day per user,
        in the background (off the request's path); only when inactivity cleanup is on."""
        if self._settings.cleanup_inactive_days <= 0:
            return
        now = datetime.now(timezone.utc)
        if known.last_seen is not None and now - known.last_seen < _LAST_SEEN_INTERVAL:
            return
        self._identities.put(app_user_id, _Known(known.communication_user_id, now))
        task = asyncio.get_running_loop().create_task(self._touch(app_user_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _touch(self, app_user_id: str) -> None:
        try:
            await self._store.touch(app_user_id)
        except DependencyUnavailable:
            log.warning("could not record last-seen of user %s", user_ref(app_user_id))
