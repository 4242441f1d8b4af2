"""The process's long-lived objects, built once on first use and shared by every invocation.

Building them lazily keeps ``import function_app`` cheap (cold start) and lets a misconfigured
setting surface as a clear error on the first request instead of a host that won't start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from .acs_identity import AcsIdentityClient
from .identity_store import IdentityStore
from .settings import Settings, get_settings
from .token_service import TokenService


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    store: IdentityStore
    acs: AcsIdentityClient
    tokens: TokenService


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    # The SDKs log every request's headers at INFO: noise and cost on the hot path, and nothing an
    # operator needs that the service's own log lines don't say.
    logging.getLogger("azure").setLevel(logging.WARNING)
    settings = get_settings()
    store = IdentityStore(settings)
    acs = AcsIdentityClient(settings)
    return Runtime(settings, store, acs, TokenService(settings, store, acs))
