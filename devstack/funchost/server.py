"""The HTTP front of the host: function routes, the admin API and timer schedules.

Behaviour copied from the Functions host where a client could tell the difference:
- a path that matches a route only under another method is 404, not 405;
- an HTTP function that returns None answers 204 with no body; a str answers 200
  text/plain; an unhandled exception answers 500 with an empty body (the traceback goes
  to the log, never to the caller);
- POST /admin/functions/{name} answers 202 at once and runs the function in the
  background; GET /admin/host/status answers {"state": "Running"} once the app is loaded;
- request bodies up to 100 MB, the host's default limit;
- a function whose route starts with "admin" is refused (logged as in error, not
  served), whatever the route prefix, because the host reserves that space.
Locally, Core Tools ignores auth levels, so function keys are neither needed nor checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import time
from typing import Any, Iterable, Iterator, Optional

import azure.functions as func
from aiohttp import web
from azure.functions import _abc as functions_abc
from azure.functions.timer import TimerRequest
from multidict import CIMultiDict

from .appconfig import AppConfigError, HostConfig, resolve_binding_expression
from .functions import FunctionEntry, Invoker, describe_methods
from .ncrontab import Schedule, ScheduleError, parse_schedule
from .routes import CompiledRoute, RouteTable, RouteTemplateError, compile_route, decode_path

log = logging.getLogger("devstack.funchost")
access_log = logging.getLogger("devstack.funchost.access")

MAX_REQUEST_BODY = 100 * 1024 * 1024
HOST_API_REASON = "This function was programmatically called via the host APIs."
# Headers Kestrel computes itself; a stale value from the function would corrupt the reply.
_COMPUTED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


def _joined(pairs: Iterable[tuple[str, str]], separator: str) -> dict[str, str]:
    """Collapse repeated names into one value, as the host hands them to the worker."""
    merged: dict[str, str] = {}
    for name, value in pairs:
        merged[name] = f"{merged[name]}{separator}{value}" if name in merged else value
    return merged


def to_web_response(entry: FunctionEntry, result: Any) -> web.Response:
    """Turn what an HTTP function returned into the reply the host would send."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(status=200, body=result.encode("utf-8"), content_type="text/plain", charset="utf-8")
    if not isinstance(result, functions_abc.HttpResponse):
        log.error(
            "Function '%s' returned %s; an HTTP function must return func.HttpResponse, str or None",
            entry.name,
            type(result).__name__,
        )
        return web.Response(status=500)
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in result.headers.items():
        if name.lower() not in _COMPUTED_HEADERS:
            headers.add(name, value)
    if "Content-Type" not in headers:
        mimetype = result.mimetype
        headers["Content-Type"] = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
    return web.Response(status=result.status_code, body=result.get_body(), headers=headers)


class FunctionHost:
    """Routes requests to functions and runs timers, all on the running event loop."""

    def __init__(
        self,
        entries: list[FunctionEntry],
        config: HostConfig,
        invoker: Invoker,
        *,
        schedules_enabled: bool = True,
    ) -> None:
        self._entries = entries
        self._config = config
        self._invoker = invoker
        self._schedules_enabled = schedules_enabled
        self._by_name = {e.name.lower(): e for e in entries}
        self._background: set[asyncio.Task[None]] = set()
        self._timer_tasks: list[asyncio.Task[None]] = []
        self._started = time.monotonic()
        self.routes: RouteTable[FunctionEntry] = RouteTable(self._compile_routes())

    def _compile_routes(self) -> Iterator[CompiledRoute[FunctionEntry]]:
        for entry in self._entries:
            if not entry.is_http:
                continue
            template = entry.trigger.get("route") or entry.name
            # The host refuses any route *starting with* "admin" (a plain string test on the
            # function's own route, whatever the prefix): /admin is its management API.
            if template.strip("/").lower().startswith("admin"):
                log.error(
                    "The '%s' function is in error: The specified route conflicts with one or more "
                    "built in routes. (route '%s' starts with 'admin')",
                    entry.name,
                    template,
                )
                continue
            try:
                route = compile_route(self._config.route_prefix, template, entry, describe_methods(entry))
            except (RouteTemplateError, ValueError) as error:
                log.error("The '%s' function is in error: route '%s' is invalid: %s", entry.name, template, error)
                continue
            yield route

    # -- web application ---------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await self._dispatch(request)
            status = response.status
            return response
        except web.HTTPException as error:  # e.g. 413 from aiohttp's body limit
            status = error.status
            raise
        finally:
            access_log.info(
                "%s %s %d %.1fms", request.method, request.path, status, (time.perf_counter() - started) * 1000
            )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = decode_path(request.raw_path.split("?", 1)[0])
        if path[:7].lower() == "/admin/":
            return await self._admin(request, path)
        found = self.routes.resolve(request.method, path)
        if found is not None:
            route, values = found
            return await self._invoke_http(request, route.target, values)
        if path == "/":
            return web.Response(text="Your Functions app is up and running (local host).")
        return web.Response(status=404)

    async def _invoke_http(self, request: web.Request, entry: FunctionEntry, values: dict[str, str]) -> web.Response:
        body = await request.read()
        headers = _joined(((k.lower(), v) for k, v in request.headers.items()), ", ")
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params=_joined(request.query.items(), ","),
            route_params=values,
            body=body,
        )
        try:
            result = await self._invoker.invoke(
                entry,
                http_request,
                reason=HOST_API_REASON,
                quiet=True,
                trace_parent=headers.get("traceparent", ""),
                trace_state=headers.get("tracestate", ""),
            )
        except Exception:
            return web.Response(status=500)
        return to_web_response(entry, result)

    # -- admin API ---------------------------------------------------------

    async def _admin(self, request: web.Request, path: str) -> web.Response:
        parts = path.strip("/").split("/")
        if [p.lower() for p in parts] == ["admin", "host", "status"] and request.method == "GET":
            return web.json_response(
                {
                    "id": socket.gethostname(),
                    "state": "Running",
                    "version": "devstack-funchost",
                    "processUptime": int((time.monotonic() - self._started) * 1000),
                    "functions": [e.name for e in self._entries],
                }
            )
        if len(parts) == 3 and parts[1].lower() == "functions" and request.method == "POST":
            return await self._admin_invoke(request, parts[2])
        return web.Response(status=404)

    async def _admin_invoke(self, request: web.Request, name: str) -> web.Response:
        entry = self._by_name.get(name.lower())
        if entry is None:
            return web.Response(status=404)
        if entry.trigger_type != "timerTrigger":
            return web.json_response(
                {"error": f"this local host invokes only timer functions here; call '{entry.name}' by its route"},
                status=400,
            )
        await request.read()  # {"input": ...}: a timer ignores its input, as on the host
        self._spawn(self._fire_timer(entry, HOST_API_REASON))
        return web.Response(status=202)

    # -- timers ------------------------------------------------------------

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fire_timer(self, entry: FunctionEntry, reason: str) -> None:
        timer = TimerRequest(past_due=False)
        with contextlib.suppress(Exception):  # the invoker has logged it with its traceback
            await self._invoker.invoke(entry, timer, reason=reason)

    def _schedule_for(self, entry: FunctionEntry) -> Optional[Schedule]:
        raw = str(entry.trigger.get("schedule") or "")
        try:
            return parse_schedule(resolve_binding_expression(raw))
        except (ScheduleError, AppConfigError) as error:
            log.error("The '%s' function is in error: invalid timer schedule '%s': %s", entry.name, raw, error)
            return None

    def start_timers(self) -> None:
        """Start each timer's schedule (unless disabled); bad schedules are logged, not fatal."""
        for entry in self._entries:
            if entry.trigger_type != "timerTrigger":
                continue
            schedule = self._schedule_for(entry)
            if schedule is None or not self._schedules_enabled:
                continue
            loop = asyncio.get_running_loop()
            self._timer_tasks.append(loop.create_task(self._run_schedule(entry, schedule)))

    async def _run_schedule(self, entry: FunctionEntry, schedule: Schedule) -> None:
        if entry.trigger.get("runOnStartup"):
            await self._fire_timer(entry, f"Timer fired at {dt.datetime.now(dt.timezone.utc).isoformat()}")
        level = logging.INFO  # announce the first occurrence; later ones only at debug
        last_due = dt.datetime.now(dt.timezone.utc)
        while True:
            now = dt.datetime.now(dt.timezone.utc)
            # A sleep may wake a hair early; never fire the same occurrence twice.
            due = schedule.next_after(max(now, last_due))
            last_due = due
            log.log(
                level, "Function '%s' next runs at %s (schedule '%s')", entry.name, due.isoformat(), schedule.expression
            )
            level = logging.DEBUG
            await asyncio.sleep((due - now).total_seconds())
            await self._fire_timer(entry, f"Timer fired at {due.isoformat()}")

    async def stop(self, grace_seconds: float) -> None:
        """Stop schedules, give background invocations a moment to finish, then cancel them."""
        for task in self._timer_tasks:
            task.cancel()
        pending = [*self._timer_tasks, *self._background]
        if self._background:
            await asyncio.wait(self._background, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def describe(self, base_url: str) -> list[str]:
        """Lines listing the functions, like Core Tools prints at start-up."""
        lines = []
        by_entry = {id(r.target): r for r in self.routes}
        for entry in self._entries:
            route = by_entry.get(id(entry))
            if route is not None:
                methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
                lines.append(f"{entry.name}: [{methods}] {base_url}/{route.template}")
            else:
                lines.append(f"{entry.name}: {entry.trigger_type}")
        return lines
