"""Debugging the app in this host the way Core Tools does it: through the app setting
``languageWorkers__python__arguments``.

Core Tools starts the Python worker as ``python <languageWorkers__python__arguments> worker.py``,
and the VS Code Azure Functions extension debugs a Python app by starting ``func host start``
with that setting set to the Python extension's debugpy launcher listening on 127.0.0.1:9091, then
attaching to 9091 ("Attach to Python Functions"; microsoft/vscode-azurefunctions,
src/debug/PythonDebugProvider.ts, defaultPythonDebugPort and getShellExecution). This host runs the
app in its own process, so instead of re-launching itself it reads the same setting and starts
the same debugpy listener in-process, before the app is imported. One launch configuration
("attach to 127.0.0.1:9091") therefore works with either host.

Only the debugpy forms are understood (``-m debugpy`` or a path to a debugpy folder, then
``--listen [host:]port`` and optionally ``--wait-for-client``); anything else is an error naming
the setting, since quietly ignoring a debugging request would leave a developer waiting.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import PurePath
from typing import Mapping, Optional

SETTING = "languageWorkers__python__arguments"
DEFAULT_HOST = "127.0.0.1"  # debugpy's own default when --listen names only a port

log = logging.getLogger("devstack.funchost")


class DebugSettingError(ValueError):
    """The setting asks for something this host cannot do; the message names the setting."""


@dataclass(frozen=True)
class DebugListener:
    """Where debugpy listens for the editor, and whether the host waits for it first."""

    host: str
    port: int
    wait_for_client: bool = False


def _endpoint(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise DebugSettingError(f"{SETTING}: --listen wants [host:]port, not {value!r}") from None
    if not 0 < number < 65536:
        raise DebugSettingError(f"{SETTING}: port {number} is out of range")
    return (host or DEFAULT_HOST), number


def parse_worker_arguments(value: Optional[str]) -> Optional[DebugListener]:
    """The debugpy listener the setting asks for; None when the setting is unset or blank."""
    try:
        tokens = shlex.split(value or "")
    except ValueError as error:
        raise DebugSettingError(f"{SETTING}: cannot split the arguments ({error})") from None
    if not tokens:
        return None
    if tokens[:2] == ["-m", "debugpy"]:
        rest = tokens[2:]
    elif PurePath(tokens[0]).name == "debugpy":  # the Python extension's launcher path form
        rest = tokens[1:]
    else:
        raise DebugSettingError(
            f"{SETTING}: this host understands only '-m debugpy --listen [host:]port [--wait-for-client]'"
        )
    listen: Optional[tuple[str, int]] = None
    wait = False
    index = 0
    while index < len(rest):
        option = rest[index]
        if option == "--listen" and index + 1 < len(rest):
            listen = _endpoint(rest[index + 1])
            index += 2
        elif option.startswith("--listen="):
            listen = _endpoint(option.split("=", 1)[1])
            index += 1
        elif option == "--wait-for-client":
            wait = True
            index += 1
        else:
            raise DebugSettingError(f"{SETTING}: debugpy option {option!r} is not supported by this host")
    if listen is None:
        raise DebugSettingError(f"{SETTING}: debugpy needs --listen [host:]port")
    return DebugListener(listen[0], listen[1], wait)


def start_debugger(environ: Mapping[str, str]) -> Optional[DebugListener]:
    """Start debugpy as the setting asks (no-op when unset). Raises DebugSettingError when the
    setting is malformed or debugpy is not installed (it is in requirements-dev.txt)."""
    listener = parse_worker_arguments(environ.get(SETTING))
    if listener is None:
        return None
    try:
        import debugpy  # only when asked: it is a development tool, not a dependency of the app
    except ImportError:
        raise DebugSettingError(f"{SETTING} asks for debugpy, which is not installed (pip install -r requirements-dev.txt)") from None
    try:
        debugpy.listen((listener.host, listener.port))
    except Exception as error:  # debugpy reports a busy port as RuntimeError or OSError
        raise DebugSettingError(f"{SETTING}: debugpy cannot listen on {listener.host}:{listener.port}: {error}") from None
    log.info("Debugger (debugpy) listening on %s:%d; attach to it to debug the app", listener.host, listener.port)
    if listener.wait_for_client:
        log.info("Waiting for the debugger to attach before loading the app")
        debugpy.wait_for_client()
    return listener
