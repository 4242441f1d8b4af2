"""The HTTP face of the emulator: the ACS Identity routes (authenticated, throttled) and the
unauthenticated ``/_emulator/`` control surface for tests and benchmarks."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from .auth import verify_bearer, verify_hmac
from .config import IDENTITY_API_VERSIONS, OPERATIONS, SUPPORTED_API_VERSIONS, TEAMS_API_VERSIONS, EmulatorConfig
from .errors import ApiError, denied
from .limits import Governor, Settings
from .service import IdentityService
from .store import IdentityStore
from .tokens import TokenMinter

SERVICE = web.AppKey("service", IdentityService)
GOVERNOR = web.AppKey("governor", Governor)


@dataclass(frozen=True)
class Call:
    """What an API request asks for: the operation (for limits, faults and stats), the method it
    must use, the status it answers with on success and the action on the service."""

    operation: str
    method: str
    status: int
    action: Callable[[IdentityService, Any], Any]


def _route(path: str, raw: bytes) -> Call:
    """The call a request path names, or 404. ``path`` is decoded, so ``8%3Aacs%3A…`` (sync
    SDK) and ``8:acs:…`` (aio SDK) name the same identity."""
    parts = path.split("/")
    if path == "/identities":
        body = _peek_json(raw)
        with_token = isinstance(body, dict) and bool(body.get("createTokenWithScopes"))
        return Call("createIdentityAndToken" if with_token else "createIdentity", "POST", 201, lambda s, b: s.create(b))
    if path == "/teamsUser/:exchangeAccessToken":
        return Call("exchangeTeamsUserAccessToken", "POST", 200, lambda s, b: s.exchange(b))
    if len(parts) in (3, 4) and parts[1] == "identities" and parts[2]:
        identity_id = parts[2]
        if len(parts) == 3:
            return Call("deleteIdentity", "DELETE", 204, lambda s, b: s.delete(identity_id))
        if parts[3] == ":revokeAccessTokens":
            return Call("revokeAccessTokens", "POST", 204, lambda s, b: s.revoke(identity_id))
        if parts[3] == ":issueAccessToken":
            return Call("issueAccessToken", "POST", 200, lambda s, b: s.issue(identity_id, b))
    raise ApiError(404, "NotFound", "The requested resource does not exist.")


def _peek_json(raw: bytes) -> Any:
    """The body if it is JSON, else None: enough to tell the two kinds of create apart before
    authentication, which must come before any complaint about the body."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "ValidationError", "The request body is not valid JSON.") from None


def create_app(config: EmulatorConfig) -> web.Application:
    """The emulator as an aiohttp application. Serve it over TLS (see ``devstack.pki``): the real
    SDK speaks only https to it."""
    public_key = (
        serialization.load_pem_public_key(config.identity_public_key_pem) if config.identity_public_key_pem else None
    )
    store = IdentityStore(config.resource_id, config.state_file)
    minter = TokenMinter(config.token_key_path, config.resource_id, config.resource_location, config.region)
    governor = Governor(
        Settings(
            limit_scale=config.limit_scale,
            limit_window_seconds=config.limit_window_seconds,
            revocation_delay_seconds=config.revocation_delay_seconds,
            deleted_identity_answer=config.deleted_identity_answer,
            identical_tokens_within_second=config.identical_tokens_within_second,
        )
    )
    service = IdentityService(store, minter, public_key, lambda: governor.settings)
    key = config.access_key_bytes

    def authenticate(request: web.Request, raw: bytes) -> None:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("HMAC-SHA256 "):
            verify_hmac(
                key=key,
                authorization=authorization,
                method=request.method,
                path_and_query=request.raw_path,
                headers=request.headers,
                body=raw,
                now=dt.datetime.now(dt.timezone.utc),
                max_skew_seconds=config.max_clock_skew_seconds,
            )
        elif authorization.startswith("Bearer "):
            verify_bearer(authorization[len("Bearer ") :].strip(), public_key)
        else:
            raise denied()

    async def api(request: web.Request) -> web.StreamResponse:
        """One API call: noted as under way (``GET /_emulator/calls/in-flight``) from its arrival
        until it is answered. The body is read first, so one too large is refused (413) before
        any added latency."""
        arrived = time.monotonic()
        started = time.perf_counter()
        correlation = _ms_cv()
        raw = await request.read()
        try:
            under_way = _route(request.path, raw).operation
        except ApiError:
            under_way = None
        ticket = governor.arrive(under_way, _named_identity(request.path), arrived)
        try:
            return await answer(request, raw, arrived, started, correlation)
        finally:
            governor.leave(ticket)

    async def answer(
        request: web.Request, raw: bytes, arrived: float, started: float, correlation: str
    ) -> web.StreamResponse:
        operation = None
        identity: str | None = None
        versions: str | None = TEAMS_API_VERSIONS if request.path.startswith("/teamsUser/") else IDENTITY_API_VERSIONS
        try:
            latency = governor.settings.latency_ms
            if latency > 0:
                await asyncio.sleep(latency / 1000)
            call = _route(request.path, raw)
            operation = call.operation
            identity = _named_identity(request.path)
            if request.method != call.method:
                raise ApiError(405, "MethodNotAllowed", f"Use {call.method} for this resource.")
            authenticate(request, raw)
            if request.query.get("api-version") not in SUPPORTED_API_VERSIONS:
                raise ApiError(
                    400, "UnsupportedApiVersion", f"Supported api-versions: {', '.join(sorted(SUPPORTED_API_VERSIONS))}."
                )
            after = governor.admit(operation)
            result = call.action(service, _parse_json(raw))
            identity = identity or _made_identity(result)
            if after is not None:  # done, and then the reply fails: the caller cannot know
                governor.committed_then_failed.append(
                    {"operation": operation, "msCv": correlation, "identity": _made_identity(result)}
                )
                raise after.error()
            response: web.StreamResponse = (
                web.json_response(result, status=call.status)  # application/json; charset=utf-8
                if result is not None
                else web.Response(status=call.status)
            )
        except ApiError as error:
            response = error.response()
            if not error.lists_versions:
                versions = None
        if operation is not None:
            governor.record(operation, response.status, identity, arrived)
        # The headers real ACS sends on every answer (../acs-recordings, every session).
        response.headers["MS-CV"] = correlation
        response.headers["X-Azure-Ref"] = _azure_ref()
        response.headers["X-Processing-Time"] = f"{round((time.perf_counter() - started) * 1000)}ms"
        response.headers["X-Cache"] = "CONFIG_NOCACHE"
        response.headers["Request-Context"] = f"appId=cid-v1:{config.resource_id}"
        response.headers["Strict-Transport-Security"] = "max-age=2592000"
        if versions is not None and operation is not None:
            response.headers["api-supported-versions"] = versions
        request_id = request.headers.get("x-ms-client-request-id")
        if request_id:
            response.headers["x-ms-client-request-id"] = request_id
        return response

    async def identities(_: web.Request) -> web.Response:
        return web.json_response({"identities": store.live_ids()})

    async def verify(request: web.Request) -> web.Response:
        body = await _control_body(request)
        token = body.get("token")
        if not isinstance(token, str):
            raise ApiError(400, "BadRequest", 'Send {"token": "..."}.')
        return web.json_response(service.verify(token))

    async def add_fault(request: web.Request) -> web.Response:
        fault = governor.add_fault(await _control_body(request))
        return web.json_response(fault.as_json(), status=201)

    async def list_faults(_: web.Request) -> web.Response:
        return web.json_response({"faults": [f.as_json() for f in governor.faults]})

    async def clear_faults(_: web.Request) -> web.Response:
        governor.faults.clear()
        return web.Response(status=204)

    async def get_config(_: web.Request) -> web.Response:
        return web.json_response(governor.settings.as_json())

    async def put_config(request: web.Request) -> web.Response:
        governor.configure(await _control_body(request))
        return web.json_response(governor.settings.as_json())

    def _operations(request: web.Request) -> set[str] | None:
        """``?operation=deleteIdentity`` (repeatable) keeps only those operations."""
        names = set(request.query.getall("operation", []))
        unknown = names - set(OPERATIONS)
        if unknown:
            raise ApiError(400, "BadRequest", f"Unknown operations {sorted(unknown)}; known: {list(OPERATIONS)}.")
        return names or None

    async def recorded_calls(request: web.Request) -> web.Response:
        return web.json_response(governor.recorded_calls(_operations(request)))

    async def calls_in_flight(request: web.Request) -> web.Response:
        """Only the calls under way: cheap enough to poll while waiting for one."""
        return web.json_response({"inFlight": governor.in_flight(_operations(request))})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(governor.stats())

    async def reset(_: web.Request) -> web.Response:
        store.use_resource(None)
        store.clear()
        governor.reset()
        return web.Response(status=204)

    async def put_resource(request: web.Request) -> web.Response:
        body = await _control_body(request)
        resource_id = body.get("resourceId")
        if resource_id is not None:
            try:
                resource_id = str(uuid.UUID(str(resource_id)))
            except ValueError:
                raise ApiError(400, "BadRequest", 'Send {"resourceId": "<guid>"} or {"resourceId": null}.') from None
        return web.json_response({"resourceId": store.use_resource(resource_id)})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    @web.middleware
    async def control_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()

    async def flush_state(_: web.Application) -> None:
        store.flush()

    app = web.Application(middlewares=[control_errors])
    app[SERVICE] = service
    app[GOVERNOR] = governor
    app.router.add_get("/_emulator/health", health)
    app.router.add_get("/_emulator/identities", identities)
    app.router.add_post("/_emulator/tokens:verify", verify)
    app.router.add_get("/_emulator/faults", list_faults)
    app.router.add_post("/_emulator/faults", add_fault)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_get("/_emulator/config", get_config)
    app.router.add_put("/_emulator/config", put_config)
    app.router.add_get("/_emulator/stats", stats)
    app.router.add_get("/_emulator/calls", recorded_calls)
    app.router.add_get("/_emulator/calls/in-flight", calls_in_flight)
    app.router.add_put("/_emulator/resource", put_resource)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_route("*", "/{tail:.*}", api)
    app.on_cleanup.append(flush_state)
    return app


def _ms_cv() -> str:
    """A correlation vector shaped like ACS's (22 base64 characters, then ".0")."""
    return base64.b64encode(secrets.token_bytes(16)).decode()[:22] + ".0"


def _azure_ref() -> str:
    return "0" + base64.b64encode(secrets.token_bytes(24)).decode()


def _named_identity(path: str) -> str | None:
    """The identity a request path names (delete, revoke, issue), else None."""
    parts = path.split("/")
    return parts[2] if len(parts) in (3, 4) and parts[1] == "identities" and parts[2] else None


def _made_identity(result: Any) -> str | None:
    identity = result.get("identity") if isinstance(result, dict) else None
    return identity.get("id") if isinstance(identity, dict) else None


async def _control_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if await request.read() else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "The body must be a JSON object.")
    return body
