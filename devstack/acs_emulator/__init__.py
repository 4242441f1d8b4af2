"""A local emulator of the Azure Communication Services Identity data-plane API (2023-10-01).

Faithful enough that the real ``azure-communication-identity`` SDK, sync and aio, with a
connection string (HMAC) or a managed identity (bearer), cannot tell it from the service:
same routes, status codes, error codes, token shape, authentication and throttling, and the
response headers real ACS sends (MS-CV, X-Azure-Ref, api-supported-versions…). A control
surface under ``/_emulator/`` lets tests inspect identities, verify tokens, inject faults (also
after the operation was done: ``commit``; or only after ``after`` matching calls), add latency,
tighten limits, and read each call's arrival and answer times and the calls still under way
(``GET /_emulator/calls``, a bounded recording).

Where real ACS's behaviour is unknown or delayed (../ACS_FACTS.md), it is a knob of
``PUT /_emulator/config``, so tests can run under each plausible behaviour:
``revocationDelaySeconds`` (real: up to 15 minutes; default 0), ``deletedIdentityAnswer``
(404, 400, 403 or 401; real: undocumented; default 404), ``identicalTokensWithinSecond`` (real
tokens carry whole seconds and no unique id; default off, every token unique). ``PUT
/_emulator/resource`` answers as another ACS resource (a replaced one) until put back. The Teams
exchange answers exactly as recorded from the real service (../acs-recordings).

In-process::

    app = create_app(EmulatorConfig(access_key=..., resource_id=..., identity_public_key_pem=...))
    runner = await start(app, "127.0.0.1", 7090, pki.server_ssl_context())

As a process: ``python -m devstack.acs_emulator --help``.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from .app import GOVERNOR, SERVICE, create_app
from .auth import sign_request_headers
from .config import API_VERSION, EmulatorConfig

__all__ = ["API_VERSION", "GOVERNOR", "SERVICE", "EmulatorConfig", "create_app", "sign_request_headers", "start"]

ACCESS_LOG_FORMAT = '%a "%r" %s %Tfs'


async def start(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext, *, access_log: bool = True
) -> web.AppRunner:
    """Serve ``app`` over TLS; returns the runner (``await runner.cleanup()`` to stop).

    The access log shows method, path, status and duration only: never headers, so neither
    Authorization nor tokens reach it.
    """
    runner = web.AppRunner(
        app,
        access_log=web.access_logger if access_log else None,
        access_log_format=ACCESS_LOG_FORMAT,
        handle_signals=False,
    )
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024).start()
    return runner
