"""A small app exercising what the local Functions host must get right.

Each function shows one thing a caller can observe: route parameters, methods,
response shaping, failures, threading, settings, timers.
"""

import asyncio
import json
import logging
import os
import threading

import azure.functions as func

from sample_helpers import ORIGIN

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
blueprint = func.Blueprint()
log = logging.getLogger("sample")


def _json(value: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


@app.route(route="hello/{name}/{greeting?}", methods=["GET"])
async def hello(req: func.HttpRequest) -> func.HttpResponse:
    log.info("hello function ran")
    return _json({"route_params": dict(req.route_params)})


@app.route(route="items/{id:int}", methods=["GET"])
async def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"function": "item_by_id", "route_params": dict(req.route_params)})


@app.route(route="items/new", methods=["GET"])
async def new_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"function": "new_item"})


@app.route(route="things/{id:guid}", methods=["GET"])
async def thing_by_guid(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route_params": dict(req.route_params)})


@app.route(route="files/{*path}", methods=["GET"])
async def files(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route_params": dict(req.route_params)})


@app.route(route="echo", methods=["POST", "PUT"])
async def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body()
    return _json(
        {
            "method": req.method,
            "url": req.url,
            "params": dict(req.params),
            "x_sample": req.headers.get("X-Sample"),
            "body_length": len(body),
            "body_prefix": body[:32].decode("utf-8", "replace"),
        }
    )


@app.route(route="respond", methods=["GET"])
async def respond(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse(
        json.dumps({"created": True}),
        status_code=201,
        headers={"X-Sample-Reply": "yes"},
        mimetype="application/json",
    )
    response.headers.add("Set-Cookie", "first=1; Path=/")
    response.headers.add("Set-Cookie", "second=2; Path=/")
    return response


@app.route(route="nothing", methods=["GET"])
async def nothing(req: func.HttpRequest) -> None:
    return None


@app.route(route="plain", methods=["GET"])
async def plain(req: func.HttpRequest) -> str:
    return "just text"


@app.route(route="boom", methods=["GET"])
async def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("sample failure detail")


@app.route(route="whoami", methods=["GET"])
def whoami(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json(
        {
            "function_name": context.function_name,
            "invocation_id": context.invocation_id,
            "on_main_thread": threading.current_thread() is threading.main_thread(),
        }
    )


@app.route(route="settings", methods=["GET"])
async def settings(req: func.HttpRequest) -> func.HttpResponse:
    return _json({name: os.environ.get(name) for name in ("SAMPLE_GREETING", "SAMPLE_OVERRIDDEN")})


@app.route(route="origin", methods=["GET"])
async def origin(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"origin": ORIGIN})


_async_groups: dict = {}
_sync_groups: dict = {}
_sync_lock = threading.Lock()


@app.route(route="rendezvous/async/{n:int}", methods=["GET"])
async def rendezvous_async(req: func.HttpRequest) -> func.HttpResponse:
    """Answers met=true only if n requests of the same group were in flight together."""
    n, group = int(req.route_params["n"]), req.params["group"]
    count, everyone_here = _async_groups.setdefault(group, ([0], asyncio.Event()))
    count[0] += 1
    if count[0] >= n:
        everyone_here.set()
    try:
        await asyncio.wait_for(everyone_here.wait(), timeout=10)
    except asyncio.TimeoutError:
        return _json({"met": False})
    return _json({"met": True})


@app.route(route="rendezvous/sync/{n:int}", methods=["GET"])
def rendezvous_sync(req: func.HttpRequest) -> func.HttpResponse:
    """The same for plain functions, which must run in parallel threads."""
    n, group = int(req.route_params["n"]), req.params["group"]
    with _sync_lock:
        barrier = _sync_groups.setdefault(group, threading.Barrier(n))
    try:
        barrier.wait(timeout=10)
    except threading.BrokenBarrierError:
        return _json({"met": False})
    return _json({"met": True})


@app.timer_trigger(schedule="%SAMPLE_TIMER_SCHEDULE%", arg_name="tick_timer", run_on_startup=False)
def tick(tick_timer: func.TimerRequest) -> None:
    """Appends a line to the marker file so a test can see it ran, and with what."""
    record = {"type": type(tick_timer).__name__, "past_due": tick_timer.past_due}
    with open(os.environ["SAMPLE_TIMER_MARKER"], "a", encoding="utf-8") as marker:
        marker.write(json.dumps(record) + "\n")


@app.route(route="administration/report", methods=["GET"])
async def administration_report(req: func.HttpRequest) -> func.HttpResponse:
    """The Functions host refuses routes starting with "admin"; so must the local host."""
    return _json({"served": True})


@blueprint.route(route="bp/ping", methods=["GET"])
async def blueprint_ping(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"from": "blueprint"})


app.register_functions(blueprint)
