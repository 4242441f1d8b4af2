"""Command line: ``python -m devstack.funchost --app-dir DIR [--port 7071] [--settings FILE]``.

Start-up order follows Core Tools: settings into the environment, then the debugger when
``languageWorkers__python__arguments`` asks for one (see debugging.py), then host.json,
then the app imported (inside the event loop that will serve it for the life of the
process), then the listener, then timer schedules. If the app cannot be loaded the
process exits non-zero with the reason, rather than serving errors.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

from aiohttp import web

from .appconfig import AppConfigError, load_host_config, load_local_settings
from .debugging import DebugSettingError, start_debugger
from .functions import AppLoadError, Invoker, import_function_app, index_functions
from devstack.signals import until_stopped

from .server import FunctionHost

log = logging.getLogger("devstack.funchost")

MAX_HEADER_BYTES = 32 * 1024
# Seconds that in-flight requests and admin-started invocations get on shutdown.
SHUTDOWN_GRACE_SECONDS = 10.0


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.funchost", description=__doc__)
    parser.add_argument("--app-dir", type=Path, default=Path("."), help="folder holding function_app.py and host.json")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port to listen on (default 7071)")
    parser.add_argument("--settings", type=Path, help="settings file (default APP_DIR/local.settings.json)")
    parser.add_argument("--no-schedules", action="store_true", help="do not run timers on their schedules")
    parser.add_argument("--log-level", default="INFO", help="root log level (default INFO)")
    return parser.parse_args(argv)


def configure_logging(level: str) -> None:
    """App and host logs to stdout with level and logger name, like the host's console."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # azure-core logs every request and response header at INFO; on a local console
    # that drowns the app's own lines and slows every SDK call.
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)


def _thread_pool_size() -> Optional[int]:
    """PYTHON_THREADPOOL_THREAD_COUNT as the worker reads it; unset means Python's default."""
    value = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
    return int(value) if value else None


async def serve(args: argparse.Namespace, app_dir: Path) -> int:
    os.chdir(app_dir)  # the worker's working directory is the app root
    try:
        host_config = load_host_config(app_dir / "host.json")
        module = import_function_app(app_dir)
        entries = index_functions(module, app_dir)
    except (AppConfigError, AppLoadError) as error:
        log.error("The function app could not be loaded: %s", error, exc_info=error.__cause__)
        return 1

    executor = ThreadPoolExecutor(max_workers=_thread_pool_size(), thread_name_prefix="function-sync")
    host = FunctionHost(entries, host_config, Invoker(executor), schedules_enabled=not args.no_schedules)
    # The Functions host (Kestrel) accepts request headers up to 32 KiB; aiohttp's default of
    # 8 KiB would answer a large header itself, in plain text, echoing part of it into the log.
    runner = web.AppRunner(
        host.build_app(),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        max_line_size=MAX_HEADER_BYTES,
        max_field_size=MAX_HEADER_BYTES,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port, backlog=1024).start()
    except OSError as error:
        log.error("Cannot listen on %s:%d: %s", args.host, args.port, error)
        await runner.cleanup()
        return 1

    base_url = f"http://{args.host}:{args.port}"
    log.info("Functions:\n%s", "\n".join(f"        {line}" for line in host.describe(base_url)))
    log.info("Host started; listening on %s (route prefix '%s')", base_url, host_config.route_prefix)

    host.start_timers()
    await until_stopped()

    log.info("Stopping the host")
    await host.stop(SHUTDOWN_GRACE_SECONDS)
    await runner.cleanup()
    executor.shutdown(wait=False, cancel_futures=True)
    log.info("Host stopped")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    app_dir = args.app_dir.resolve()
    settings = (args.settings or app_dir / "local.settings.json").resolve()
    os.environ.setdefault("AZURE_FUNCTIONS_ENVIRONMENT", "Development")  # as Core Tools sets it
    if args.settings is not None and not settings.is_file():
        log.error("Settings file %s does not exist", settings)
        return 1
    try:
        applied = load_local_settings(settings, os.environ)
    except AppConfigError as error:
        log.error("%s", error)
        return 1
    if applied:
        log.info("Loaded %d app settings from %s", len(applied), settings)  # names only, never values
    try:
        # After the settings (so the setting may also sit in local.settings.json's Values), and
        # before the app is imported, so a breakpoint in module-level code can be hit as well.
        start_debugger(os.environ)
    except DebugSettingError as error:
        log.error("%s", error)
        return 1
    return asyncio.run(serve(args, app_dir))


if __name__ == "__main__":
    sys.exit(main())
