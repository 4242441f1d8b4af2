"""Teams meeting guests: a person who is not an app user gets a short-lived ACS identity with a
voip.join token, to join a Teams meeting from the app's page (the Calling SDK does the joining).

It knows neither HTTP nor Table Storage: it composes the identity store and the ACS client, as
the token service does. Guarantees it keeps:

- every call makes a NEW identity (a guest is not an app user: there is nothing to map it to),
  with the guest policy's scopes and lifetime only (shared/access_policy.py);
- the identity is recorded with its token's expiry BEFORE the token is handed out, so the sweep
  finds and deletes it once the token has expired (ACS cannot list identities: an identity
  nobody recorded is kept by ACS for good). A failed recording deletes the identity just made
  and answers 503 (if the delete fails too, shared/unmapped.py deletes or records it in the
  background); a request cancelled mid-way still ends recorded or deleted, never orphaned;
- the display name is the person's own words, not an identity: it is validated like any input
  and handed back, never stored or logged;
- budgets per client address and in total, per minute per instance, bound how many identities an
  anonymous flood can make (429 GuestBudgetExceeded with Retry-After), whatever it sends.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from . import telemetry
from .acs_identity import AcsIdentityClient, AcsToken
from .errors import DependencyUnavailable, InvalidRequest, Throttled
from .identity_store import IdentityStore
from .rate_limit import PerUserRateLimiter
from .unmapped import UnmappedIdentities
from .settings import Settings

log = logging.getLogger(__name__)

MAX_DISPLAY_NAME_CHARS = 64
#: Punctuation people use in names ("O'Brien", "Anne-Marie", "Dr. Who (guest)", "A & B"); the
#: rest (angle brackets, quotes, symbols, emoji) is refused: the name is shown to other people in
#: the meeting and is no place for markup.
_NAME_PUNCTUATION = frozenset(".,'’-‐_()&@!?:/+#")
#: Letters (any script), combining marks (accents; scripts that need them) and digits.
_NAME_CATEGORIES = ("L", "M", "N")
#: More combining marks in a row than any script needs: "Zalgo" text that spills over a page.
_MAX_MARKS_IN_A_ROW = 4
#: A raw value longer than this is refused before it is looked at character by character.
_MAX_RAW_CHARS = 256


def display_name(value: object) -> str:
    """The guest's display name, trimmed: 1-64 characters of letters, combining marks, digits,
    spaces and common punctuation, at least one letter or digit; nothing else (no control, format
    or bidi characters, no lone surrogates, no symbols). 400 InvalidDisplayName otherwise."""
    problem = _name_problem(value)
    if problem:
        raise InvalidRequest(
            f"displayName {problem}: use 1 to {MAX_DISPLAY_NAME_CHARS} letters, digits, spaces and common punctuation.",
            code="InvalidDisplayName",
        )
    return value.strip(" ")  # type: ignore[union-attr]


def _name_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "is missing or not a string"
    if len(value) > _MAX_RAW_CHARS:
        return "is too long"
    name = value.strip(" ")
    if not name:
        return "is empty"
    if len(name) > MAX_DISPLAY_NAME_CHARS:
        return "is too long"
    marks = 0
    for char in name:
        category = unicodedata.category(char)
        if category.startswith("M"):
            marks += 1
            if marks > _MAX_MARKS_IN_A_ROW:
                return "has too many combining marks in a row"
            continue
        marks = 0
        if char == " " or char in _NAME_PUNCTUATION or category.startswith(_NAME_CATEGORIES):
            continue
        return "contains a character that is not allowed"
    if unicodedata.category(name[0]).startswith("M"):
        return "starts with a combining mark"
    if "  " in name:
        return "has repeated spaces"
    if not any(unicodedata.category(c).startswith(("L", "N")) for c in name):
        return "has no letter or digit"
    return None


@dataclass(frozen=True)
class GuestToken:
    communication_user_id: str
    token: str
    expires_on: datetime
    display_name: str
    scopes: tuple[str, ...]

    def __repr__(self) -> str:  # never let a token reach a log line through repr()
        return f"GuestToken({self.communication_user_id}, expires_on={self.expires_on.isoformat()})"


class GuestService:
    def __init__(self, settings: Settings, store: IdentityStore, acs: AcsIdentityClient) -> None:
        self._settings = settings
        self._store = store
        self._acs = acs
        self._per_client = PerUserRateLimiter(settings.guest_requests_per_client_per_minute)
        self._total = PerUserRateLimiter(settings.guest_requests_per_minute, max_users=1)
        self._background: set[asyncio.Task[object]] = set()
        self._unmapped = UnmappedIdentities(store, acs)

    def spend_budget(self, client: str) -> None:
        """Take one guest token from the client's budget, then from the instance's; 429
        GuestBudgetExceeded with Retry-After when either is spent. ``client`` is the caller's
        address as the platform forwarded it (shared/client_address.py). The total is asked
        only once the client's own budget let the request in, so an address refused by its own
        budget spends nothing that other guests share; a request the total refuses is given
        back to the client, so a guest who retried during a flood is served once the total has
        room again."""
        wait = self._per_client.check(client)
        if not wait:
            wait = self._total.check("all")
            if wait:  # refused by the total: the client's own request is given back
                self._per_client.give_back(client)
        if wait:
            raise Throttled(
                "Too many guests are joining right now; wait a moment and try again.",
                retry_after=int(wait),
                code="GuestBudgetExceeded",
            )

    async def issue(self, name: str, scopes: tuple[str, ...], minutes: int) -> GuestToken:
        """A new identity with a token of ``scopes`` for ``minutes``, recorded before it is
        returned. The create-and-record runs as a task of its own that the request only waits
        for, so a request cancelled meanwhile (its deadline, a client gone) still leaves the
        identity recorded or deleted."""
        task = asyncio.get_running_loop().create_task(self._create_and_record(scopes, minutes))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        communication_user_id, token = await asyncio.shield(task)
        return GuestToken(communication_user_id, token.token, token.expires_on, name, scopes)

    async def _create_and_record(self, scopes: tuple[str, ...], minutes: int) -> tuple[str, AcsToken]:
        communication_user_id, token = await self._acs.create_user_and_token(scopes, minutes)
        try:
            await self._store.record_guest(communication_user_id, token.expires_on)
        except BaseException as error:
            log.warning("deleting a new guest identity whose record could not be written (%s)", type(error).__name__)
            try:
                if await self._acs.delete_identity(communication_user_id):
                    telemetry.identity_deleted("unmapped")
            except DependencyUnavailable:
                self._unmapped.keep(communication_user_id, "guest record write failed")  # deleted or recorded later
            if isinstance(error, Exception):
                raise DependencyUnavailable("The guest identity could not be recorded; try again shortly.", retry_after=5) from None
            raise
        log.info("created a guest identity")
        telemetry.identity_created()
        telemetry.token_issued("guest")
        return communication_user_id, token
