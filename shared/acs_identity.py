"""The ACS Identity service, through the async azure-communication-identity SDK.

This module knows ACS and nothing of HTTP requests or Table Storage. It turns the SDK's
exceptions into the service's domain errors once, here, so callers catch by meaning:
``IdentityNotFound`` (ACS no longer knows the identity: repair or treat as done),
``DependencyUnavailable`` (retry budget spent), ``InvalidRequest`` (ACS rejected the input).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, TypeVar

from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from .credentials import get_credential
from .errors import DependencyUnavailable, InvalidRequest, ServiceError
from .retry import pipeline_options
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: ACS's error codes for a Teams token it will not exchange (the caller's input, so a 400).
_TEAMS_TOKEN_REJECTIONS = frozenset({"InvalidAccessToken", "ValidationError"})

#: How long a create that outlived the caller's budget is still awaited, to delete what it made.
_LATE_CREATE_WAIT_SECONDS = 120


class AcsRefused(DependencyUnavailable):
    """ACS refused a request the service made (403, Denied, IdentityNotOwned…): a problem of the
    deployment (a missing role, the wrong resource), not of the caller and not transient."""


class IdentityNotFound(Exception):
    """ACS answered 404: the identity was deleted (or never existed in this resource)."""


@dataclass(frozen=True)
class AcsToken:
    """An ACS access token. ``expires_on`` is always an aware UTC datetime, whatever shape the
    SDK handed back (it passes the service's raw string through)."""

    token: str
    expires_on: datetime

    def __repr__(self) -> str:  # never let a token reach a log line through repr()
        return f"AcsToken(expires_on={self.expires_on.isoformat()})"


def to_utc(value: Any) -> datetime:
    """Normalise the SDK's ``expires_on`` (datetime, ISO string with any precision, or epoch)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
    else:
        text = str(value).strip().replace("Z", "+00:00")
        if "." in text:  # the service may send 7 fractional digits; Python takes at most 6
            head, _, tail = text.partition(".")
            digits = "".join(ch for ch in tail if ch.isdigit())
            rest = tail[len(digits):]
            text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _retry_after(error: HttpResponseError) -> int:
    response = getattr(error, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(1, int(float(header))) if header else 5
    except ValueError:
        return 5


class AcsIdentityClient:
    """One long-lived async SDK client per process; every call bounded by a time budget."""

    def __init__(self, settings: Settings, retries: int = 3) -> None:
        self._settings = settings
        self._retries = retries
        self._client: Any = None
        self._late_deletes: set[asyncio.Task[None]] = set()

    def _sdk(self) -> Any:
        if self._client is None:
            from azure.communication.identity.aio import CommunicationIdentityClient

            options = pipeline_options(self._settings.dependency_timeout_seconds, self._retries)
            if self._settings.acs_endpoint:
                self._client = CommunicationIdentityClient(self._settings.acs_endpoint, get_credential(), **options)
            else:
                self._client = CommunicationIdentityClient.from_connection_string(
                    self._settings.acs_connection_string, **options
                )
        return self._client

    async def _call(self, operation: str, call: Callable[[Any], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._settings.dependency_timeout_seconds):
                return await call(self._sdk())
        except ResourceNotFoundError:
            raise IdentityNotFound(operation) from None
        except asyncio.TimeoutError:
            log.warning("acs %s timed out", operation)
            raise DependencyUnavailable("Azure Communication Services did not answer in time.", retry_after=5) from None
        except HttpResponseError as error:  # ClientAuthenticationError included
            status = error.status_code or 0
            code = getattr(getattr(error, "error", None), "code", None) or "AcsError"
            if operation == "exchange_teams_token" and (code in _TEAMS_TOKEN_REJECTIONS or status in (400, 403)):
                raise InvalidRequest(
                    "The Teams token was rejected: it is invalid, expired or not for this app and user.", code="InvalidTeamsToken"
                ) from None
            if 400 <= status < 500 and status not in (408, 429):
                # Every input the service sends is validated first, so ACS refusing one (Denied,
                # IdentityNotOwned, a missing role…) is the service's problem, not the caller's.
                log.error("acs %s refused the service's request: %s %s", operation, status, code)
                raise AcsRefused("Azure Communication Services refused the service's request.", retry_after=30) from None
            # A 429 is ACS pacing us: expected in a sweep, which waits it out; not worth a warning.
            level = logging.INFO if status == 429 else logging.WARNING
            log.log(level, "acs %s failed (%d retries allowed): %s %s", operation, self._retries, status, code)
            raise DependencyUnavailable(
                "Azure Communication Services is unavailable; try again shortly.", retry_after=_retry_after(error)
            ) from None
        except (ServiceRequestError, ServiceResponseError) as error:
            log.warning("acs %s unreachable: %s", operation, type(error).__name__)
            raise DependencyUnavailable("Azure Communication Services could not be reached.") from None

    async def create_user_and_token(self, scopes: tuple[str, ...], minutes: int) -> tuple[str, AcsToken]:
        """One round trip: a new identity and its first token.

        ACS has no idempotent create, so a create that outlives the time budget is not cancelled
        (ACS may already have made the identity): it is left to finish, and the identity it
        returns is deleted, since nobody will map it. Otherwise it would be orphaned forever."""

        async def create(sdk: Any) -> tuple[str, AcsToken]:
            user, token = await sdk.create_user_and_token(
                list(scopes), token_expires_in=timedelta(minutes=minutes), read_timeout=_LATE_CREATE_WAIT_SECONDS
            )
            return user.properties["id"], AcsToken(token.token, to_utc(token.expires_on))

        pending = asyncio.ensure_future(create(self._sdk()))
        try:
            return await self._call("create_user_and_token", lambda _: asyncio.shield(pending))
        except DependencyUnavailable:
            if not pending.done():
                pending.add_done_callback(self._delete_late_identity)
            raise

    def _delete_late_identity(self, finished: asyncio.Future[tuple[str, AcsToken]]) -> None:
        if finished.cancelled() or finished.exception() is not None:
            return
        communication_user_id, _ = finished.result()
        log.info("deleting an identity whose creation finished after the time budget")
        task = asyncio.ensure_future(self._delete_quietly(communication_user_id))
        self._late_deletes.add(task)
        task.add_done_callback(self._late_deletes.discard)

    async def _delete_quietly(self, communication_user_id: str) -> None:
        try:
            await self.delete_identity(communication_user_id)
        except ServiceError:
            log.error("could not delete an identity created after the time budget; it is orphaned")

    async def issue_token(self, communication_user_id: str, scopes: tuple[str, ...], minutes: int) -> AcsToken:
        from azure.communication.identity import CommunicationUserIdentifier

        async def call(sdk: Any) -> AcsToken:
            token = await sdk.get_token(
                CommunicationUserIdentifier(communication_user_id), list(scopes), token_expires_in=timedelta(minutes=minutes)
            )
            return AcsToken(token.token, to_utc(token.expires_on))

        return await self._call("issue_token", call)

    async def revoke_tokens(self, communication_user_id: str) -> None:
        from azure.communication.identity import CommunicationUserIdentifier

        await self._call("revoke_tokens", lambda sdk: sdk.revoke_tokens(CommunicationUserIdentifier(communication_user_id)))

    async def delete_identity(self, communication_user_id: str) -> bool:
        """Delete the identity and everything ACS keeps for it. False when it was already gone,
        which every caller treats as done (deletion is idempotent)."""
        from azure.communication.identity import CommunicationUserIdentifier

        try:
            await self._call("delete_user", lambda sdk: sdk.delete_user(CommunicationUserIdentifier(communication_user_id)))
        except IdentityNotFound:
            return False
        return True

    async def exchange_teams_token(self, teams_token: str, app_id: str, user_id: str) -> AcsToken:
        async def call(sdk: Any) -> AcsToken:
            token = await sdk.get_token_for_teams_user(teams_token, app_id, user_id)
            return AcsToken(token.token, to_utc(token.expires_on))

        try:
            return await self._call("exchange_teams_token", call)
        except IdentityNotFound:  # no identity is named in an exchange: a 404 is ACS's oddity
            raise DependencyUnavailable("Azure Communication Services could not exchange the token.") from None

    async def check_credentials(self) -> None:
        """Prove the managed identity can get a token for ACS (no ACS call, no side effect).
        With a connection string there is nothing to check without calling ACS."""
        if not self._settings.acs_endpoint:
            return
        try:
            await asyncio.wait_for(
                get_credential().get_token("https://communication.azure.com//.default"),
                self._settings.dependency_timeout_seconds,
            )
        except Exception as error:  # any credential failure means the same thing to a caller
            log.warning("managed identity token for ACS unavailable: %s", type(error).__name__)
            raise DependencyUnavailable("The service's identity is unavailable.") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
