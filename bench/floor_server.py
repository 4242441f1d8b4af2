"""The floor of P5 and P6: the same SDK work behind the smallest HTTP server a Python process can
have (one aiohttp.web handler, no service logic), so the figures can show how much of the gap
between the function host and the bare SDK any Python HTTP front pays, and how much is the
service's own code.

    python -m bench.floor_server --port N --users FILE    # P6: steady load
    python -m bench.floor_server --port N --cold USER_ID  # P5: a fresh process's first token

``--users FILE``: a JSON object mapping each caller's ``x-ms-client-principal`` header to their
communicationUserId (the identities the function host created at sign-up). Every POST /api/token
is one dictionary lookup and one ``get_token`` of the aio SDK with the service's credential and
client configuration (shared.credentials, shared.retry), as bench.load_worker's SDK side makes.

``--cold USER_ID``: the process imports aiohttp.web and the SDKs, listens, and its first POST
/api/token does what the service's first request for a new user does (bench.cold_bare: the two
table reads, createUserAndToken, the mapping insert) for USER_ID, whatever the request says. It
carries the same probes as both other sides of P5 (bench.probe) and writes them to
BENCH_PROBE_OUT just after its first answer.

Either way the settings come from the environment, as bench.cold_bare reads them.
"""

from __future__ import annotations

import time

STARTED = time.time()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from . import probe  # noqa: E402

if "--cold" in sys.argv:  # P5 only: the probes keep every event in memory
    probe.install()
probe.mark("process_started", STARTED)
probe.mark("server_import_started")

from aiohttp import web  # noqa: E402

probe.mark("server_import_finished")


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--users", help="JSON file: principal header -> communicationUserId (P6)")
    mode.add_argument("--cold", metavar="APP_USER_ID", help="answer the first request with a new user's first token (P5)")
    return parser.parse_args(argv)


def _steady_app(users_file: str) -> web.Application:
    from datetime import timedelta

    from azure.communication.identity import CommunicationUserIdentifier
    from azure.communication.identity.aio import CommunicationIdentityClient

    from shared.credentials import new_credential
    from shared.retry import pipeline_options

    from .stack import SCOPES, TOKEN_MINUTES

    with open(users_file) as source:
        identities: dict[str, str] = json.load(source)
    credential = new_credential()
    client = CommunicationIdentityClient(os.environ["ACS_ENDPOINT"], credential,
                                         **pipeline_options(float(os.environ["DEPENDENCY_TIMEOUT_SECONDS"])))
    lifetime = timedelta(minutes=TOKEN_MINUTES)

    async def token(request: web.Request) -> web.Response:
        communication_user_id = identities[request.headers["x-ms-client-principal"]]
        issued = await client.get_token(CommunicationUserIdentifier(communication_user_id), list(SCOPES), token_expires_in=lifetime)
        return web.json_response({"communicationUserId": communication_user_id, "token": issued.token,
                                  "expiresOn": str(issued.expires_on)})

    async def close(_: web.Application) -> None:
        await client.close()
        await credential.close()

    app = web.Application()
    app.router.add_post("/api/token", token)
    app.on_cleanup.append(close)
    return app


def _cold_app(app_user_id: str) -> web.Application:
    from . import cold_bare  # the SDK imports, between the probe marks import_started and import_finished

    clients: list[object] = []

    async def token(request: web.Request) -> web.Response:
        probe.mark("first_request_received")
        communication_user_id = await cold_bare.first_token(app_user_id, keep_open=clients)
        probe.mark("first_response_ready")
        asyncio.get_running_loop().call_later(0.2, _write_probe_report)
        return web.json_response({"communicationUserId": communication_user_id})

    async def close(_: web.Application) -> None:
        for client in clients:
            await client.close()  # type: ignore[attr-defined]

    app = web.Application()
    app.router.add_post("/api/token", token)
    app.on_cleanup.append(close)
    return app


def _write_probe_report() -> None:
    path = os.environ.get("BENCH_PROBE_OUT")
    if path:
        with open(path, "w") as out:
            json.dump({"marks": probe.MARKS, "events": probe.EVENTS}, out)


async def _serve(args: argparse.Namespace) -> None:
    app = _cold_app(args.cold) if args.cold else _steady_app(args.users)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port, backlog=1024).start()
    probe.mark("listening")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(_serve(_args(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
