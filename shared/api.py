"""The HTTP handlers behind function_app.py: parse and bound the request, learn the caller,
call the token service, shape the response. This module knows HTTP, not Table Storage or ACS."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import azure.functions as func

from . import access_policy, telemetry
from .caller import PLATFORM_AUTH_OFF, PLATFORM_AUTH_OFF_MESSAGE, Caller, identify_caller, is_app_user_id
from .client_address import client_address
from .guest_service import GuestService, display_name
from .errors import DependencyUnavailable, Forbidden, InvalidRequest, NotFound, PayloadTooLarge, Throttled
from .http_responses import empty_response, json_response, respond
from .request_origin import refuse_cross_site
from .rate_limit import PerUserRateLimiter
from .runtime import get_runtime
from .settings import Settings
from .single_flight import SingleFlight
from .token_service import user_ref

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
MAX_IDS_PER_REQUEST = 1000
ADMIN_ROLE = "admin"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _refuse_foreign(req: func.HttpRequest) -> None:
    """First thing on every route that changes state or spends a budget, before the caller is
    identified: a request of another site's page is 403 CrossSiteRequest (shared/request_origin.py).
    Header checks only, in memory."""
    refuse_cross_site(req.headers)


def read_json(req: func.HttpRequest, fields: frozenset[str]) -> dict[str, Any]:
    """The request's JSON object (empty when there is no body), bounded in size, with only the
    expected fields, so a typo such as "scope" is an error rather than silently ignored.

    A non-empty body must say it is JSON (``application/json`` or ``…+json``): a body with no
    Content-Type, or a form, multipart or text/plain one, is what another site's page can make a
    browser send without a CORS preflight, so it is never read (400 UnsupportedContentType). Every
    route reads its body before it spends a budget or changes anything."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes.", code="PayloadTooLarge")
    if not body.strip():
        return {}
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise InvalidRequest("The request body must be JSON, sent with Content-Type: application/json.",
                             code="UnsupportedContentType")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("The request body is not valid JSON.", code="MalformedJson") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="MalformedJson")
    unknown = sorted(set(data) - fields)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise InvalidRequest(f"Unknown field(s) {shown}; expected: {', '.join(sorted(fields))}.", code="UnknownField")
    return data


def _text_field(data: dict[str, Any], name: str, max_length: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidRequest(f"{name} must be a non-empty string of at most {max_length} characters.", code="InvalidField")
    return value


async def _caller(req: func.HttpRequest) -> Caller:
    caller = await identify_caller(req.headers, get_runtime().settings)
    telemetry.identify_user(caller.app_user_id)
    return caller


@lru_cache(maxsize=2)
def _limiters(settings: Settings) -> dict[str, PerUserRateLimiter]:
    """Per-user limits of the routes that change state or cost an ACS call, besides the token
    routes (limited by the token service with TOKEN_REQUESTS_PER_MINUTE). Per instance."""
    return {
        "identity-change": PerUserRateLimiter(settings.identity_changes_per_minute),
        "manage": PerUserRateLimiter(settings.manage_requests_per_minute),
    }


def _check_limit(kind: str, caller: Caller, what: str) -> None:
    wait = _limiters(get_runtime().settings)[kind].check(caller.app_user_id)
    if wait:
        raise Throttled(f"Too many {what}; wait before asking again.", retry_after=int(wait))


async def issue_token(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/token: the caller's token, creating their ACS identity on the first call.
    A token issued moments ago for the same scopes and lifetime may be handed out again unless
    the request says ``Cache-Control: no-cache`` (an explicit refresh)."""

    async def work() -> func.HttpResponse:
        _refuse_foreign(req)
        caller = await _caller(req)
        settings = get_runtime().settings
        access_policy.admit(caller, settings)
        data = read_json(req, frozenset({"scopes", "expiresInMinutes"}))
        service = get_runtime().tokens
        scopes, minutes = access_policy.token_request(caller, settings, data.get("scopes"), data.get("expiresInMinutes"))
        fresh = "no-cache" in (req.headers.get("cache-control") or "").lower()
        issued = await service.issue_token(caller.app_user_id, scopes, minutes, fresh=fresh)
        log.info("token issued for user %s", user_ref(caller.app_user_id))
        return json_response(
            {"communicationUserId": issued.communication_user_id, "token": issued.token, "expiresOn": _iso(issued.expires_on)}
        )

    return await respond("issue_token", work)


async def get_identity(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/identity: which ACS identity the caller has, without issuing a token."""

    async def work() -> func.HttpResponse:
        caller = await _caller(req)
        communication_user_id = await get_runtime().tokens.identity_of(caller.app_user_id)
        if communication_user_id is None:
            raise NotFound("You have no communication identity yet; POST /api/token creates it.", code="IdentityNotFound")
        return json_response({"appUserId": caller.app_user_id, "communicationUserId": communication_user_id})

    return await respond("get_identity", work)


async def revoke_tokens(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/token/revoke: every token issued so far to the caller stops working."""

    async def work() -> func.HttpResponse:
        _refuse_foreign(req)
        caller = await _caller(req)
        read_json(req, frozenset())
        _check_limit("identity-change", caller, "revoke and delete requests")
        await get_runtime().tokens.revoke_tokens(caller.app_user_id)
        return empty_response()

    return await respond("revoke_tokens", work)


async def delete_identity(req: func.HttpRequest) -> func.HttpResponse:
    """DELETE /api/identity: the caller's ACS identity and its mapping go (idempotent)."""

    async def work() -> func.HttpResponse:
        _refuse_foreign(req)
        caller = await _caller(req)
        _check_limit("identity-change", caller, "revoke and delete requests")
        await get_runtime().tokens.delete_identity(caller.app_user_id)
        return empty_response()

    return await respond("delete_identity", work)


async def exchange_teams_token(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/teams/token: a Teams user's Entra token exchanged for an ACS token."""

    async def work() -> func.HttpResponse:
        _refuse_foreign(req)
        caller = await _caller(req)
        settings = get_runtime().settings
        if not settings.teams_exchange_enabled:
            raise Forbidden("This service does not exchange Teams tokens.", code="TeamsExchangeDisabled")
        access_policy.admit(caller, settings)
        data = read_json(req, frozenset({"teamsToken", "appId", "userId"}))
        teams_token = _text_field(data, "teamsToken", 8192)
        app_id = _text_field(data, "appId", 128)
        user_id = _text_field(data, "userId", 128)
        access_policy.check_teams_exchange(caller, settings, teams_token, app_id, user_id)
        token = await get_runtime().tokens.exchange_teams_token(caller.app_user_id, teams_token, app_id, user_id)
        return json_response({"token": token.token, "expiresOn": _iso(token.expires_on)})

    return await respond("exchange_teams_token", work)


@lru_cache(maxsize=1)
def _guests() -> GuestService:
    runtime = get_runtime()
    return GuestService(runtime.settings, runtime.store, runtime.acs)


async def issue_guest_token(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/guest/token: a Teams meeting guest's token, for a NEW short-lived identity, with
    the name they typed handed back. Anonymous: the caller's sign-in, if any, is not read (a
    guest is not an app user). Off unless GUEST_ACCESS_ENABLED (404 GuestAccessDisabled)."""

    async def work() -> func.HttpResponse:
        _refuse_foreign(req)  # anonymous, but another site's page must not spend the guest budgets either
        scopes, minutes = access_policy.guest_request(get_runtime().settings)
        data = read_json(req, frozenset({"displayName"}))
        name = display_name(data.get("displayName"))
        guests = _guests()
        guests.spend_budget(client_address(req.headers))  # only well-formed requests spend it
        issued = await guests.issue(name, scopes, minutes)
        return json_response({
            "communicationUserId": issued.communication_user_id,
            "token": issued.token,
            "expiresOn": _iso(issued.expires_on),
            "displayName": issued.display_name,
            "scopes": list(issued.scopes),
        })

    return await respond("issue_guest_token", work)


async def mark_deleted_users(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/manage/deleted-users: the app says these users are deleted (admin role only, and
    only for a caller the access policy admits: an operator is first someone who may use the
    service). Answers how many ids were marked and how many of them name a user who has an
    identity now, so an operator sees at once when the ids are not the service's (say, a missing
    provider). Once the tombstones are written, the tokens those users hold are revoked, so a
    deleted user's call ends now rather than at the next sweep (see _revoke_marked)."""

    async def work() -> func.HttpResponse:
        started = asyncio.get_running_loop().time()
        _refuse_foreign(req)
        caller = await _caller(req)
        settings = get_runtime().settings
        if ADMIN_ROLE not in caller.roles:
            raise Forbidden("Only callers in the admin role may mark users deleted.", code="NotAdmin")
        access_policy.admit(caller, settings)
        data = read_json(req, frozenset({"appUserIds"}))
        ids = data.get("appUserIds")
        if not isinstance(ids, list) or not 0 < len(ids) <= MAX_IDS_PER_REQUEST:
            raise InvalidRequest(f"appUserIds must be a list of 1 to {MAX_IDS_PER_REQUEST} app user ids.", code="InvalidField")
        bad = [index for index, value in enumerate(ids) if not is_app_user_id(value)]
        if bad:
            raise InvalidRequest(
                f"appUserIds[{bad[0]}] (and {len(bad) - 1} more) is not an app user id: expected '<provider>|<user id>' "
                "without control, format or unpaired surrogate characters.",
                code="InvalidAppUserId",
            )
        _check_limit("manage", caller, "operator requests")  # malformed requests cost nothing and are not counted
        tokens = get_runtime().tokens
        unique = list(dict.fromkeys(ids))
        existing = await _with_identity(unique)
        marked = await tokens.mark_deleted(unique)  # the tombstones first: they alone stop new tokens
        log.info("admin %s marked %d users deleted (%d had an identity)", user_ref(caller.app_user_id), marked, len(existing))
        # What is left of the deadline, less one dependency timeout for the answer to get out.
        budget = settings.request_deadline_seconds - settings.dependency_timeout_seconds \
            - (asyncio.get_running_loop().time() - started)
        await _revoke_marked(existing, budget)
        return json_response({"marked": marked, "matched": len(existing)}, 202)

    return await respond("mark_deleted_users", work)


#: Point reads or revocations the operator endpoint runs at once.
_OPERATOR_CONCURRENCY = 16


async def _with_identity(app_user_ids: list[str]) -> list[str]:
    """The users among these who have an identity (point reads, 16 at a time)."""
    tokens = get_runtime().tokens
    gate = asyncio.Semaphore(_OPERATOR_CONCURRENCY)

    async def exists(app_user_id: str) -> bool:
        async with gate:
            return await tokens.identity_of(app_user_id) is not None

    found = await asyncio.gather(*(exists(i) for i in app_user_ids))
    return [app_user_id for app_user_id, has in zip(app_user_ids, found) if has]


async def _revoke_marked(app_user_ids: list[str], budget_seconds: float) -> None:
    """Revoke the tokens of users just marked deleted (16 at a time, within ``budget_seconds``).

    A tombstone stops new tokens at once, but a token a user already holds works until it expires
    (up to 24 hours) or the sweep deletes the identity (CLEANUP_SCHEDULE, daily by default).
    Revoking closes that gap. It is best effort: the tombstones are already written, so a
    revocation that fails or does not finish in time is logged and left to the sweep, which
    deletes the identity (and so its tokens) anyway; the answer is 202 either way."""
    if not app_user_ids:
        return
    tokens = get_runtime().tokens
    gate = asyncio.Semaphore(_OPERATOR_CONCURRENCY)

    async def revoke(app_user_id: str) -> None:
        async with gate:
            await tokens.revoke_tokens(app_user_id)

    tasks = [asyncio.ensure_future(revoke(i)) for i in app_user_ids]
    try:
        done, pending = await asyncio.wait(tasks, timeout=max(budget_seconds, 0.001))
    finally:  # also when the request itself is cancelled: nothing is left running unowned
        for task in tasks:
            task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    failed = [task for task in done if task.exception() is not None]
    for task in failed[:5]:
        log.warning("revoking a deleted user's tokens failed (%s); the sweep deletes the identity", type(task.exception()).__name__)
    if failed or pending:
        log.warning("revoked the tokens of %d of %d users marked deleted; %d failed, %d ran out of time; "
                    "the sweep deletes the rest", len(done) - len(failed), len(app_user_ids), len(failed), len(pending))


_health_checks: SingleFlight[bool] = SingleFlight()


async def _dependencies_healthy() -> bool:
    runtime = get_runtime()
    try:
        await runtime.store.ping()
        await runtime.acs.check_credentials()
    except DependencyUnavailable:
        return False
    return True


async def health(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/health: 200 when Table Storage and the service's identity answer, else 503.
    Anonymous, so concurrent probes share one check: a flood cannot multiply dependency load."""

    async def work() -> func.HttpResponse:
        settings = get_runtime().settings
        if settings.trust_client_principal and not settings.platform_auth_enabled:
            return json_response(
                {"status": "unhealthy", "error": {"code": PLATFORM_AUTH_OFF, "message": PLATFORM_AUTH_OFF_MESSAGE + "."}},
                503,
                {"Retry-After": "60"},
            )
        if not await _health_checks.run("health", _dependencies_healthy):
            return json_response(
                {"status": "unhealthy", "error": {"code": "DependencyUnavailable", "message": "A dependency is unavailable."}},
                503,
                {"Retry-After": "10"},
            )
        return json_response({"status": "healthy"})

    return await respond("health", work)
