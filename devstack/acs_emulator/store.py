"""Identities of the emulated resource, their revocations and deletions.

Kept in memory; with a state file every change is also written to disk (JSON, replaced
atomically) so restarting the dev stack keeps every identity and every revocation. Writes are
coalesced over a short delay so a benchmark creating thousands of identities a second does not
rewrite the file thousands of times (the delay grows with the time a write takes, keeping
writing to a small share of the emulator's time); closing the store flushes what is pending.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from devstack.pki import write_atomically

log = logging.getLogger("devstack.acs_emulator")

FLUSH_DELAY_SECONDS = 0.2


@dataclass
class Identity:
    created_ms: int
    revoked_at_ms: int | None = None


class IdentityStore:
    def __init__(self, resource_id: str, state_file: Path | None) -> None:
        self.original_resource_id = resource_id
        self.resource_id = resource_id
        self.prefix = f"8:acs:{resource_id}_"
        self._state_file = state_file
        self._live: dict[str, Identity] = {}
        self._deleted: dict[str, int] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_delay = FLUSH_DELAY_SECONDS
        if state_file and state_file.exists():
            self._load(state_file)

    # -- queries -------------------------------------------------------------------------

    def get(self, identity_id: str) -> Identity | None:
        return self._live.get(identity_id)

    def is_deleted(self, identity_id: str) -> bool:
        return identity_id in self._deleted

    def live_ids(self) -> list[str]:
        return list(self._live)

    # -- changes -------------------------------------------------------------------------

    def create(self) -> str:
        identity_id = f"{self.prefix}{uuid.uuid4()}"
        self._live[identity_id] = Identity(created_ms=_now_ms())
        self._changed()
        return identity_id

    def revoke(self, identity_id: str) -> None:
        self._live[identity_id].revoked_at_ms = _now_ms()
        self._changed()

    def delete(self, identity_id: str) -> None:
        del self._live[identity_id]
        self._deleted[identity_id] = _now_ms()
        self._changed()

    def use_resource(self, resource_id: str | None) -> str:
        """Answer as another ACS resource from now on (None: the original one), as when a
        deployment's ACS resource is replaced: every identity made before belongs to another
        resource. Identities are kept, so switching back restores them."""
        self.resource_id = resource_id or self.original_resource_id
        self.prefix = f"8:acs:{self.resource_id}_"
        return self.resource_id

    def clear(self) -> None:
        self._live.clear()
        self._deleted.clear()
        self._changed()

    # -- persistence ---------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text())
        if data.get("resourceId") not in (None, self.original_resource_id):
            log.warning("state file %s belongs to another resource id; starting empty", path)
            return
        for identity_id, record in data.get("identities", {}).items():
            self._live[identity_id] = Identity(created_ms=int(record["createdMs"]), revoked_at_ms=record.get("revokedAtMs"))
        self._deleted = {k: int(v) for k, v in data.get("deleted", {}).items()}

    def _snapshot(self) -> bytes:
        identities = {
            k: {"createdMs": v.created_ms, "revokedAtMs": v.revoked_at_ms} for k, v in self._live.items()
        }
        return json.dumps({"resourceId": self.original_resource_id, "identities": identities, "deleted": self._deleted}).encode()

    def _changed(self) -> None:
        if self._state_file is None or self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_handle = loop.call_later(self._flush_delay, self.flush)

    def flush(self) -> None:
        """Write the state file now (no-op without one)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._state_file is not None:
            started = time.perf_counter()
            write_atomically(self._state_file, self._snapshot())
            self._flush_delay = max(FLUSH_DELAY_SECONDS, 10 * (time.perf_counter() - started))


def resource_id_in(state_file: Path) -> str | None:
    """The resource id a state file was written for, if it exists and names one."""
    try:
        return json.loads(state_file.read_text()).get("resourceId")
    except (OSError, ValueError):
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)
