"""A local emulator of the Azure Communication Services Identity data-plane API (2023-10-01).

Faithful enough that the real ``azure-communication-identity`` SDK, sync and aio, with a
connection string (HMAC) or a managed identity (bearer), cannot tell it from the service:
same routes, status codes, error codes, token shape, authentication and throttling. A control
surface under ``/_emulator/`` lets tests inspect identities, verify tokens, inject faults, add
latency and tighten limits.

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
