"""Identities ACS made that could be neither recorded nor deleted.

ACS cannot list identities, so an identity recorded nowhere is kept by ACS for good. When a new
identity's mapping (or guest row) cannot be written and its delete fails too (one outage of the
host's network takes both), the identity is handed here: a background task keeps trying to delete
it and, until it can, to write an ``unmapped`` row naming it, which the sweep
(shared/cleanup.py) deletes like an expired guest. Its id is logged either way (an ACS identity
id, not a user id), so even a host that dies meanwhile leaves the id in its logs.

It knows neither HTTP nor Table Storage: it composes the identity store and the ACS client.
"""

from __future__ import annotations

import asyncio
import logging

from . import telemetry
from .acs_identity import AcsIdentityClient
from .errors import DependencyUnavailable
from .identity_store import IdentityStore

log = logging.getLogger(__name__)

#: Attempts, with waits doubling from 1 s up to 30 s between them: about five minutes in all.
_ATTEMPTS = 14
_FIRST_WAIT_SECONDS = 1.0
_MAX_WAIT_SECONDS = 30.0


class UnmappedIdentities:
    """Background deletion (or else a durable record) of identities nothing maps."""

    def __init__(self, store: IdentityStore, acs: AcsIdentityClient) -> None:
        self._store = store
        self._acs = acs
        self._tasks: set[asyncio.Task[None]] = set()

    def keep(self, communication_user_id: str, why: str) -> None:
        """Take over an identity whose delete just failed: delete or record it in the background."""
        log.error(
            "could not delete an unmapped new identity %s (%s); deleting or recording it in the background",
            communication_user_id, why,
        )
        task = asyncio.get_running_loop().create_task(self._settle(communication_user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _settle(self, communication_user_id: str) -> None:
        recorded = False
        wait = _FIRST_WAIT_SECONDS
        for _ in range(_ATTEMPTS):
            try:
                outcome = await self._acs.delete_unmapped(communication_user_id)
            except DependencyUnavailable:
                outcome = None
            if outcome in ("deleted", "gone"):
                if outcome == "deleted":
                    telemetry.identity_deleted("unmapped")
                log.info("deleted the unmapped identity %s", communication_user_id)
                if recorded:
                    await self._forget(communication_user_id)
                return
            if not recorded:
                try:
                    await self._store.record_unmapped(communication_user_id, "unmapped")
                    recorded = True
                    log.warning("recorded the unmapped identity %s for the sweep", communication_user_id)
                except DependencyUnavailable:
                    pass
            if recorded and outcome == "not_owned":
                return  # another resource's now: the sweep keeps trying
            await asyncio.sleep(wait)
            wait = min(wait * 2, _MAX_WAIT_SECONDS)
        if not recorded:
            log.error("the unmapped identity %s could be neither deleted nor recorded; it is orphaned", communication_user_id)

    async def _forget(self, communication_user_id: str) -> None:
        try:
            await self._store.remove_unmapped(communication_user_id)
        except DependencyUnavailable:
            pass  # the sweep finds it gone and removes the row

