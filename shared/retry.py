"""azure-core pipeline options shared by every SDK client, configured once.

azure-core's retry policy already retries 408/429/5xx (POST included) with exponential backoff and
honours Retry-After; the service only bounds it, so a request fails fast (503 with Retry-After)
instead of hanging its caller. The cleanup sweep passes ``retries=0``: it paces itself on
Retry-After across all its workers rather than letting each one sleep. One call is never retried
at all: the ACS identity create (shared/acs_identity.py passes ``retry_total=0`` with it), because
a re-sent create whose first reply was lost makes a second identity while the first is lost.
A conditional table write re-sent after a lost reply is safe: its refusal is read back
(shared/identity_store.py).
"""

from __future__ import annotations

import os
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import telemetry


@lru_cache(maxsize=1)
def _environment_configures_http() -> bool:
    """Honour HTTP(S)_PROXY or a .netrc only when one is set: otherwise aiohttp re-reads them in a
    thread pool on every SDK request (about 0.5 ms of CPU per call, measured in bench/)."""
    return bool(urllib.request.getproxies()) or "NETRC" in os.environ or (Path.home() / ".netrc").exists()


def pipeline_options(timeout_seconds: float, retries: int = 3, dependency: str | None = None) -> dict[str, Any]:
    """Keyword arguments for an SDK client: a short retry budget inside ``timeout_seconds``. With
    telemetry on, every answer of ``dependency`` is counted, the 429s azure-core retried included."""
    options: dict[str, Any] = {
        "retry_total": retries,
        "retry_backoff_factor": 0.2,
        "retry_backoff_max": 2,
        "connection_timeout": min(5.0, timeout_seconds),
        "read_timeout": timeout_seconds,
        "use_env_settings": _environment_configures_http(),
    }
    if dependency and telemetry.enabled():
        options["per_retry_policies"] = [telemetry.answer_counter(dependency)]
    return options
