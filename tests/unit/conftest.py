"""Fixtures for the unit tests: settings built from a small environment, and a local OIDC
issuer started in the test's event loop on a free port."""

from __future__ import annotations

from typing import AsyncIterator, Callable

import pytest
import pytest_asyncio

from devstack import oidc_issuer
from shared.settings import Settings, load_settings

#: Enough for load_settings; nothing in the unit tests connects to these.
MINIMAL_ENV = {
    "ACS_CONNECTION_STRING": "endpoint=https://acs.invalid/;accesskey=bm90LWEta2V5",
    "TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true",
    # App Service authentication is on (the platform's signal); tests that need it off drop it.
    "WEBSITE_AUTH_ENABLED": "True",
}


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings from the minimal environment plus the given names."""

    def make(**env: str) -> Settings:
        return load_settings({**MINIMAL_ENV, **env})

    return make


@pytest_asyncio.fixture
async def local_issuer() -> AsyncIterator[oidc_issuer.RunningIssuer]:
    running = await oidc_issuer.start()
    try:
        yield running
    finally:
        await running.close()
