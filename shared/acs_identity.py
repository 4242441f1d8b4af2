"""The ACS Identity service, through the async azure-communication-identity SDK.

This module knows ACS and nothing of HTTP requests or Table Storage. It turns the SDK's
exceptions into the service's domain errors once, here, so callers catch by meaning:
``IdentityGone`` (ACS no longer knows the identity in this resource: repair, or treat as done),
``AcsRefused`` (ACS refused the service itself: never taken for a missing identity),
``DependencyUnavailable`` (retry budget spent), ``InvalidRequest`` (ACS rejected the caller's input).

What real ACS answers for a deleted identity is not documented (404, 400 or 403 are all
plausible; ../ACS_FACTS.md: UNKNOWN), and it answers 401 IdentityNotOwned for another resource's
identity (recorded from the real service: Azure/azure-sdk-assets
js/sdk/communication/communication-identity/recordings/node/
communicationidentityclient_playbacklive_aad_eq_false_error_cases_/
recording_throws_an_error_when_attempting_to_issue_a_token_for_an_invalid_user.json). So an
identity counts as gone on any of those answers, while ``Denied`` (the service's own credentials
or role) never does: taking a refusal for a gone identity would make the sweep drop a mapping to
a live identity, an orphan forever.

Every ACS failure is logged with ACS's MS-CV correlation vector, which is what Microsoft support
asks for (the header real ACS sends on every answer: ../acs-recordings, every session).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, TypeVar

from azure.core.exceptions import (
    DecodeError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from . import telemetry
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

#: Error codes that say the named identity does not exist in this resource (any 4xx status).
_GONE_CODES = frozenset({"IdentityNotFound", "IdentityNotOwned", "NotFound", "UserNotFound", "IdentityNotExist"})
#: Codes of a refusal of the service itself (credentials, role, key): never a gone identity.
_REFUSAL_CODES = frozenset({"Denied", "Unauthorized", "Forbidden", "AuthorizationFailed", "InvalidAuthenticationToken"})
#: Fields of the bodies the service sends. A ValidationError naming one of them is about the
#: request (which the service validated first), never about the identity in the path.
_BODY_FIELDS = frozenset({"scopes", "expiresinminutes", "createtokenwithscopes", "token", "appid", "userid"})
#: Operations whose path names an identity.
_IDENTITY_OPERATIONS = frozenset({"issue_token", "revoke_tokens", "delete_user"})

_EXPIRES_ON = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,7}))?\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)


class AcsRefused(DependencyUnavailable):
    """ACS refused a request the service made (Denied, a missing role, the wrong resource key…):
    a problem of the deployment, not of the caller, not transient, and not a gone identity."""


class CreateOutcomeUnknown(DependencyUnavailable):
    """A create failed in a way that may have made an identity anyway (its reply lost, a 5xx, or
    the time budget passed while it was in flight): it counts against the user's daily creation
    budget like a create that succeeded, and it is logged and counted (``uncertain_creates``)."""


class IdentityGone(Exception):
    """ACS does not know the identity in this resource: deleted, never existed, or another
    resource's (a replaced ACS resource). The mapping to it can be repaired or dropped.
    ``not_owned``: ACS said IdentityNotOwned, so the identity may well still exist in another
    resource (the one the service pointed at before) and must stay recorded somewhere."""

    def __init__(self, operation: str, not_owned: bool = False) -> None:
        super().__init__(operation)
        self.not_owned = not_owned


#: The name earlier code used; the meaning is the same, wider set of answers.
IdentityNotFound = IdentityGone


@dataclass(frozen=True)
class AcsToken:
    """An ACS access token. ``expires_on`` is always an aware UTC datetime, whatever shape the
    SDK handed back (it passes the service's raw string through)."""

    token: str
    expires_on: datetime

    def __repr__(self) -> str:  # never let a token reach a log line through repr()
        return f"AcsToken(expires_on={self.expires_on.isoformat()})"


def to_utc(value: Any) -> datetime:
    """Normalise the SDK's ``expires_on`` (a datetime, an epoch, or the service's raw ISO 8601
    string with 0-7 fractional digits and any offset, e.g. ``2023-10-19T13:46:37.263734+00:00``
    or ``...56.1234567-07:00``). Python's fromisoformat takes at most 6 digits, so the 7th (100 ns)
    is dropped, never rounded into the next second."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
    else:
        match = _EXPIRES_ON.match(str(value).strip())
        if match is None:
            raise ValueError("expiresOn is not an ISO 8601 date and time")
        date, clock, fraction, offset = match.groups()
        micro = (fraction or "").ljust(6, "0")[:6]
        if offset is None or offset in ("Z", "z"):
            zone = "+00:00"
        else:
            zone = offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"
        moment = datetime.fromisoformat(f"{date}T{clock}.{micro}{zone}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _expiry(value: Any, minutes: int) -> datetime:
    """The token's expiry; if ACS ever sends a form this service cannot read, the lifetime it
    asked for (never a failure: after a create that would orphan the new identity)."""
    try:
        return to_utc(value)
    except (ValueError, TypeError, OverflowError):
        log.warning("acs sent an expiresOn this service cannot read; assuming the requested lifetime")
        return datetime.now(timezone.utc) + timedelta(minutes=minutes)


def _retry_after(error: HttpResponseError) -> int:
    response = getattr(error, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(1, int(float(header))) if header else 5
    except ValueError:
        return 5


def ms_cv(error: BaseException) -> str:
    """ACS's correlation vector of a failed call ("-" when no answer arrived)."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    return (headers.get("MS-CV") if headers is not None else None) or "-"


def _never_connected(error: ServiceRequestError) -> bool:
    """Whether a ServiceRequestError means no connection was ever made (so nothing was sent)."""
    import aiohttp

    from azure.core.exceptions import ServiceRequestTimeoutError

    if isinstance(error, ServiceRequestTimeoutError):  # aiohttp's connect timeout
        return True
    cause = getattr(error, "inner_exception", None) or error.__cause__
    return isinstance(cause, (aiohttp.ClientConnectorError, ConnectionRefusedError, socket.gaierror))


def _error_fields(error: HttpResponseError) -> tuple[int, str, str]:
    details = getattr(error, "error", None)
    return (
        error.status_code or 0,
        getattr(details, "code", None) or "AcsError",
        (getattr(details, "target", None) or ""),
    )


def is_gone(operation: str, status: int, code: str, target: str) -> bool:
    """Whether ACS's answer says the identity named in the path does not exist here."""
    if operation not in _IDENTITY_OPERATIONS or code in _REFUSAL_CODES:
        return False
    if status == 404 or (400 <= status < 500 and code in _GONE_CODES):
        return True
    return status in (400, 403) and code == "ValidationError" and target.lower() not in _BODY_FIELDS


class AcsIdentityClient:
    """One long-lived async SDK client per process; every call bounded by a time budget."""

    def __init__(self, settings: Settings, retries: int = 3) -> None:
        self._settings = settings
        self._retries = retries
        self._client: Any = None
        self._late_deletes: set[asyncio.Task[None]] = set()
        #: Creates whose outcome is unknown (the reply was lost or an error came after sending):
        #: ACS may hold an identity nobody recorded. Each one is logged with its MS-CV.
        self.uncertain_creates = 0

    def _sdk(self) -> Any:
        if self._client is None:
            from azure.communication.identity.aio import CommunicationIdentityClient

            options = pipeline_options(self._settings.dependency_timeout_seconds, self._retries, "acs")
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
                with telemetry.dependency("acs", operation):
                    return await call(self._sdk())
        except asyncio.TimeoutError:
            log.warning("acs %s timed out (no answer, so no MS-CV)", operation)
            raise DependencyUnavailable("Azure Communication Services did not answer in time.", retry_after=5) from None
        except HttpResponseError as error:  # ResourceNotFoundError, ClientAuthenticationError included
            status, code, target = _error_fields(error)
            correlation = ms_cv(error)
            if is_gone(operation, status, code, target):
                log.info("acs %s: identity not in this resource: %s %s ms_cv=%s", operation, status, code, correlation)
                raise IdentityGone(operation, not_owned=code == "IdentityNotOwned") from None
            if operation == "exchange_teams_token" and (code in _TEAMS_TOKEN_REJECTIONS or status in (400, 403)):
                log.info("acs %s rejected the Teams token: %s %s ms_cv=%s", operation, status, code, correlation)
                raise InvalidRequest(
                    "The Teams token was rejected: it is invalid, expired or not for this app and user.", code="InvalidTeamsToken"
                ) from None
            if 400 <= status < 500 and status not in (408, 429):
                # Every input the service sends is validated first, so ACS refusing one (Denied,
                # a missing role…) is the service's problem, not the caller's.
                log.error("acs %s refused the service's request: %s %s ms_cv=%s", operation, status, code, correlation)
                raise AcsRefused("Azure Communication Services refused the service's request.", retry_after=30) from None
            # A 429 is ACS pacing us: expected in a sweep, which waits it out; not worth a warning.
            level = logging.INFO if status == 429 else logging.WARNING
            log.log(level, "acs %s failed: %s %s ms_cv=%s", operation, status, code, correlation)
            raise DependencyUnavailable(
                "Azure Communication Services is unavailable; try again shortly.", retry_after=_retry_after(error)
            ) from None
        except (ServiceRequestError, ServiceResponseError) as error:
            log.warning("acs %s unreachable: %s (no answer, so no MS-CV)", operation, type(error).__name__)
            raise DependencyUnavailable("Azure Communication Services could not be reached.") from None

    async def create_user_and_token(
        self, scopes: tuple[str, ...], minutes: int, request_id: str | None = None
    ) -> tuple[str, AcsToken]:
        """One round trip: a new identity and its first token.

        ACS has no idempotent create (../ACS_FACTS.md), so it is never retried: azure-core
        re-sends a POST on 500/503/504 and on any answer with Retry-After, and each re-send of a
        create whose first reply was lost makes a second identity while the first is never
        recorded (ACS cannot list identities: lost for good). A create whose outcome is unknown
        is a 503 to the caller, logged with its MS-CV and counted (``uncertain_creates``).

        A create that outlives the time budget is not cancelled (ACS may already have made the
        identity): it is left to finish, and the identity it returns is deleted, since nobody
        will map it. ``request_id`` is sent as x-ms-client-request-id (azure-core's
        RequestIdPolicy), so an uncertain create can be named to Microsoft support."""

        async def create(sdk: Any) -> tuple[str, AcsToken]:
            user, token = await sdk.create_user_and_token(
                list(scopes),
                token_expires_in=timedelta(minutes=minutes),
                read_timeout=_LATE_CREATE_WAIT_SECONDS,
                retry_total=0,
                **({"request_id": request_id} if request_id else {}),
            )
            return user.properties["id"], AcsToken(token.token, _expiry(token.expires_on, minutes))

        pending = asyncio.ensure_future(create(self._sdk()))
        try:
            return await self._call("create_user_and_token", lambda _: asyncio.shield(pending))
        except DependencyUnavailable as error:
            if not pending.done():
                pending.add_done_callback(self._delete_late_identity)
            elif self._outcome_unknown(pending):
                self._count_uncertain(pending.exception())
            else:
                raise
            raise CreateOutcomeUnknown(error.message, retry_after=error.retry_after) from None
        except BaseException:
            # Cancelled while the create was in flight: its identity, if any, is deleted.
            if not pending.done():
                pending.add_done_callback(self._delete_late_identity)
            raise

    @staticmethod
    def _outcome_unknown(finished: asyncio.Future[Any]) -> bool:
        """Whether a failed create may have made an identity. Nothing was made only when ACS
        refused it (a 4xx, 429 included) or the connection was never made (refused, DNS, TLS
        handshake, connect timeout). azure-core's aiohttp transport maps EVERY aiohttp
        ClientError to ServiceRequestError, a connection dropped after the request was sent
        (ServerDisconnectedError, a reset) included, so the aiohttp error it wraps decides
        (azure-core azure/core/pipeline/transport/_aiohttp.py, AioHttpTransport.send); a body cut
        off mid-read (IncompleteReadError, a DecodeError) and a 5xx or 408 are unknown too."""
        if finished.cancelled():
            return True
        error = finished.exception()
        if error is None:
            return False
        if isinstance(error, ServiceRequestError):
            return not _never_connected(error)
        if isinstance(error, DecodeError):
            return True
        if isinstance(error, HttpResponseError):
            status = error.status_code or 0
            return status >= 500 or status == 408 or status == 0
        return True

    def _count_uncertain(self, error: BaseException | None) -> None:
        self.uncertain_creates += 1
        log.error(
            "acs create_user_and_token: outcome unknown (%s, ms_cv=%s): ACS may hold an identity nobody "
            "recorded; uncertain_creates=%d",
            type(error).__name__, ms_cv(error) if error is not None else "-", self.uncertain_creates,
        )

    def _delete_late_identity(self, finished: asyncio.Future[tuple[str, AcsToken]]) -> None:
        if finished.cancelled() or finished.exception() is not None:
            if self._outcome_unknown(finished):
                self._count_uncertain(None if finished.cancelled() else finished.exception())
            return
        communication_user_id, _ = finished.result()
        log.info("deleting an identity whose creation finished after the time budget")
        task = asyncio.ensure_future(self._delete_quietly(communication_user_id))
        self._late_deletes.add(task)
        task.add_done_callback(self._late_deletes.discard)

    async def _delete_quietly(self, communication_user_id: str) -> None:
        try:
            if await self.delete_identity(communication_user_id):
                telemetry.identity_deleted("late_create")
        except ServiceError:
            log.error("could not delete the identity %s created after the time budget; it is orphaned", communication_user_id)

    async def issue_token(self, communication_user_id: str, scopes: tuple[str, ...], minutes: int) -> AcsToken:
        from azure.communication.identity import CommunicationUserIdentifier

        async def call(sdk: Any) -> AcsToken:
            token = await sdk.get_token(
                CommunicationUserIdentifier(communication_user_id), list(scopes), token_expires_in=timedelta(minutes=minutes)
            )
            return AcsToken(token.token, _expiry(token.expires_on, minutes))

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
        except IdentityGone:
            return False
        return True

    async def delete_unmapped(self, communication_user_id: str) -> str:
        """Delete an identity nothing maps: "deleted", "gone" (ACS no longer has it), or
        "not_owned" (another resource owns it: it may still exist there, so its record is kept)."""
        try:
            return "deleted" if await self._delete_strict(communication_user_id) else "gone"
        except IdentityGone as gone:
            return "not_owned" if gone.not_owned else "gone"

    async def _delete_strict(self, communication_user_id: str) -> bool:
        from azure.communication.identity import CommunicationUserIdentifier

        await self._call("delete_user", lambda sdk: sdk.delete_user(CommunicationUserIdentifier(communication_user_id)))
        return True

    async def exchange_teams_token(self, teams_token: str, app_id: str, user_id: str) -> AcsToken:
        async def call(sdk: Any) -> AcsToken:
            token = await sdk.get_token_for_teams_user(teams_token, app_id, user_id)
            return AcsToken(token.token, _expiry(token.expires_on, 60))

        try:
            return await self._call("exchange_teams_token", call)
        except IdentityGone:  # pragma: no cover - an exchange names no identity (never classified gone)
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
