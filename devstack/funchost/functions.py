"""Loading a v2-model app and invoking its functions the way the Python worker does.

The worker imports ``function_app.py`` once, asks the module-level FunctionApp for its
functions, then for each invocation binds the trigger to the parameter it was declared
with (plus ``context`` if the signature asks for it). Coroutine functions run on the
worker's single event loop, so an aio SDK client created at import or first use keeps
working across invocations; plain functions run in a thread pool so they cannot block
that loop. The host logs "Executing"/"Executed" lines around each invocation.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import importlib.util
import inspect
import logging
import sys
import threading
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Optional

import azure.functions as func
from azure.functions import _abc as functions_abc

log = logging.getLogger("devstack.funchost")


class AppLoadError(RuntimeError):
    """The app could not be imported or indexed; the message says why."""


@dataclass(frozen=True)
class FunctionEntry:
    """One indexed function: what triggers it and how to call it."""

    name: str
    user_function: Callable[..., Any]
    trigger_type: str
    trigger_arg: str
    trigger: Mapping[str, Any]
    wants_context: bool
    is_async: bool
    directory: str

    @property
    def is_http(self) -> bool:
        return self.trigger_type == "httpTrigger"


class _TraceContext(functions_abc.TraceContext):
    def __init__(self, trace_parent: str, trace_state: str) -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class InvocationContext(func.Context):
    """The ``context`` argument: ids and names, as the worker provides them."""

    def __init__(self, invocation_id: str, entry: FunctionEntry, trace_parent: str, trace_state: str) -> None:
        self._invocation_id = invocation_id
        self._entry = entry
        self._trace = _TraceContext(trace_parent, trace_state)
        self._thread_local = threading.local()
        self._thread_local.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._entry.name

    @property
    def function_directory(self) -> str:
        return self._entry.directory

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> Any:
        return None


def _plain(value: Any) -> Any:
    """Enums in binding dicts (HttpMethod.GET) become their string values."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def import_function_app(app_dir: Path) -> ModuleType:
    """Import DIR/function_app.py as module ``function_app`` with DIR first on sys.path."""
    script = app_dir / "function_app.py"
    if not script.is_file():
        raise AppLoadError(f"{script} does not exist")
    sys.path.insert(0, str(app_dir))
    spec = importlib.util.spec_from_file_location("function_app", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:
        del sys.modules["function_app"]
        raise AppLoadError(f"importing {script} failed: {type(error).__name__}: {error}") from error
    return module


def index_functions(module: ModuleType, app_dir: Path) -> list[FunctionEntry]:
    """Find the module-level FunctionApp and describe each of its functions."""
    registers = {id(v): v for v in vars(module).values() if isinstance(v, func.FunctionRegister)}
    if not registers:
        raise AppLoadError("function_app.py defines no FunctionApp (or AsgiFunctionApp) at module level")
    if len(registers) > 1:
        raise AppLoadError("function_app.py defines more than one FunctionApp; the host allows exactly one")
    (app,) = registers.values()
    try:
        functions = app.get_functions()
    except ValueError as error:
        raise AppLoadError(f"indexing functions failed: {error}") from error
    entries = []
    for function in functions:
        trigger = function.get_trigger()
        if trigger is None:
            raise AppLoadError(f"function {function.get_function_name()!r} has no trigger")
        user_function = function.get_user_function()
        parameters = inspect.signature(user_function).parameters
        binding = {k: _plain(v) for k, v in trigger.get_dict_repr().items()}
        entry = FunctionEntry(
            name=function.get_function_name(),
            user_function=user_function,
            trigger_type=str(binding["type"]),
            trigger_arg=str(binding["name"]),
            trigger=binding,
            wants_context="context" in parameters,
            is_async=inspect.iscoroutinefunction(user_function),
            directory=str(app_dir),
        )
        unbound = set(parameters) - {entry.trigger_arg, "context"}
        if unbound:
            log.warning(
                "Function '%s' declares bindings this local host does not supply: %s",
                entry.name,
                ", ".join(sorted(unbound)),
            )
        entries.append(entry)
    return entries


class Invoker:
    """Calls user functions with the worker's threading model and the host's log lines."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def invoke(
        self,
        entry: FunctionEntry,
        trigger_value: Any,
        *,
        reason: str,
        quiet: bool = False,
        trace_parent: str = "",
        trace_state: str = "",
    ) -> Any:
        """Run one invocation; log failures with their traceback and re-raise."""
        invocation_id = str(uuid.uuid4())
        level = logging.DEBUG if quiet else logging.INFO
        log.log(level, "Executing 'Functions.%s' (Reason='%s', Id=%s)", entry.name, reason, invocation_id)
        started = time.perf_counter()
        arguments: dict[str, Any] = {entry.trigger_arg: trigger_value}
        if entry.wants_context:
            arguments["context"] = InvocationContext(invocation_id, entry, trace_parent, trace_state)
        try:
            if entry.is_async:
                result = await entry.user_function(**arguments)
            else:
                call = contextvars.copy_context().run
                result = await asyncio.get_running_loop().run_in_executor(
                    self._executor, lambda: call(entry.user_function, **arguments)
                )
        except Exception:
            log.exception(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
                entry.name,
                invocation_id,
                (time.perf_counter() - started) * 1000,
            )
            raise
        log.log(
            level,
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            entry.name,
            invocation_id,
            (time.perf_counter() - started) * 1000,
        )
        return result


def describe_methods(entry: FunctionEntry) -> Optional[list[str]]:
    """The HTTP methods a function accepts, upper-case; None means all."""
    methods = entry.trigger.get("methods")
    return [str(m).upper() for m in methods] if methods else None
