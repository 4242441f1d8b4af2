"""Timing probes for a fresh process (P5): when each outgoing SDK request and each credential
token request started and ended, so a first request can be split into its parts.

``install()`` must run before the SDKs are imported. It does not import them itself (that would
move their import cost into the probe): a small import hook patches two methods the moment their
modules are first imported by whoever needs them:

- ``AioHttpTransport.send`` of azure-core: every HTTP request of every aio SDK client (ACS,
  Tables, and the managed-identity credential's own requests), labelled by destination port;
- ``DefaultAzureCredential.get_token``/``get_token_info`` (aio): a credential token, cache hit
  or not, from the moment the SDK asks until it has the token.

The patches only read the clock around the original call; both sides of P5 carry them.
Times are ``time.time()`` (wall clock), so a parent process can line them up with its own.
"""

from __future__ import annotations

import functools
import sys
import time
from contextvars import ContextVar
from typing import Any, Callable
from urllib.parse import urlsplit

#: (kind, label, start, end) in wall-clock seconds; kind is "http" or "credential".
EVENTS: list[tuple[str, str, float, float]] = []
MARKS: dict[str, float] = {}
_in_credential: ContextVar[bool] = ContextVar("bench_probe_in_credential", default=False)

_TRANSPORT = "azure.core.pipeline.transport._aiohttp"
_CREDENTIAL = "azure.identity.aio._credentials.default"


def mark(name: str, moment: float | None = None) -> None:
    """Record the first time ``name`` happened (later calls keep the first)."""
    MARKS.setdefault(name, time.time() if moment is None else moment)


def _timed_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def send(self: Any, request: Any, **kwargs: Any) -> Any:
        started = time.time()
        try:
            return await original(self, request, **kwargs)
        finally:
            EVENTS.append(("http", str(urlsplit(request.url).port), started, time.time()))

    return send


def _timed_token(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def get_token(self: Any, *scopes: str, **kwargs: Any) -> Any:
        if _in_credential.get():  # get_token may call get_token_info: count the outer call once
            return await original(self, *scopes, **kwargs)
        reset = _in_credential.set(True)
        started = time.time()
        try:
            return await original(self, *scopes, **kwargs)
        finally:
            EVENTS.append(("credential", ",".join(scopes), started, time.time()))
            _in_credential.reset(reset)

    return get_token


def _patch(module: Any) -> None:
    if module.__name__ == _TRANSPORT:
        module.AioHttpTransport.send = _timed_send(module.AioHttpTransport.send)
    elif module.__name__ == _CREDENTIAL:
        cls = module.DefaultAzureCredential
        cls.get_token = _timed_token(cls.get_token)
        if hasattr(cls, "get_token_info"):
            cls.get_token_info = _timed_token(cls.get_token_info)


# Duck-typed finder and loader: importing importlib.abc would itself cost tens of milliseconds
# (importlib.resources and pathlib), which both sides would then carry.
class _Loader:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._inner.exec_module(module)
        _patch(module)


class _Finder:
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in (_TRANSPORT, _CREDENTIAL):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


def install() -> None:
    """Idempotent: a second call (a module that installs them, imported by one that did) adds nothing."""
    if any(isinstance(finder, _Finder) for finder in sys.meta_path):
        return
    for name in (_TRANSPORT, _CREDENTIAL):
        if name in sys.modules:
            _patch(sys.modules[name])
    sys.meta_path.insert(0, _Finder())


def parts(start: float, end: float, ports: dict[str, str]) -> dict[str, float]:
    """Milliseconds of [start, end] spent in credential tokens and in HTTP calls to each named
    port (``ports``: port -> part name), outside credential calls; the rest is ``other``.
    The service makes its calls one after another on the cold path, except the two concurrent
    table reads, which count once (their union)."""
    inside = [e for e in EVENTS if e[2] >= start and e[3] <= end]
    credentials = [(s, t) for kind, _, s, t in inside if kind == "credential"]
    result: dict[str, float] = {"credential_ms": _union_ms(credentials)}
    for port, name in ports.items():
        spans = [(s, t) for kind, label, s, t in inside if kind == "http" and label == port
                 and not any(cs <= s and t <= ct for cs, ct in credentials)]
        result[f"{name}_ms"] = _union_ms(spans)
    result["other_ms"] = round((end - start) * 1000 - sum(result.values()), 1)
    return result


def _union_ms(spans: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for s, t in sorted(spans):
        if t <= reach:
            continue
        total += t - max(s, reach)
        reach = t
    return round(total * 1000, 1)
