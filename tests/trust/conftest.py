"""Fixtures of the trust-boundary tests: extra function hosts with restrictive settings (the local
stack's own host is deliberately open), tokens from the stack's local OIDC issuer, and Teams user
tokens from its local Entra stand-in."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any, Callable, Iterator

import pytest
import requests

from tests.conftest import Api, FunctionHost

#: The tenant of the Teams user tokens the local identity endpoint mints (devstack/identity_endpoint.py).
LOCAL_TEAMS_TENANT = "72f988bf-0000-4000-8000-00000000d0c1"


@pytest.fixture(scope="session")
def start_host(stack: dict) -> Iterator[Callable[[dict[str, str], str], tuple[Api, FunctionHost]]]:
    """Start a function host with some settings overridden (an empty value means "unset": the
    code's default applies); every host is stopped at the end of the session."""
    hosts: list[FunctionHost] = []

    def start(overrides: dict[str, str], name: str) -> tuple[Api, FunctionHost]:
        host = FunctionHost(stack, overrides, f"trust-{name}")
        hosts.append(host)
        return Api(host.base), host

    yield start
    for host in hosts:
        host.stop()


class Issuer:
    """The stack's local OIDC issuer."""

    def __init__(self, stack: dict) -> None:
        self.url = stack["oidcIssuer"]
        self.audience = stack["oidcAudience"]

    def mint(self, sub: str | None = None, **body: Any) -> str:
        """An access token (RFC 9068 shape) unless ``body`` says otherwise (typ, clientId, aud…)."""
        payload = {"sub": sub or f"sub-{uuid.uuid4().hex[:12]}", "aud": self.audience, **body}
        response = requests.post(f"{self.url}/_local/token", json=payload, timeout=10)
        response.raise_for_status()
        return response.json()["token"]

    def headers(self, sub: str | None = None, **body: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(sub, **body)}"}

    def set_latency(self, seconds: float) -> None:
        requests.put(f"{self.url}/_local/latency", json={"seconds": seconds}, timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def issuer(stack: dict) -> Issuer:
    return Issuer(stack)


def teams_token(stack: dict, oid: str, app_id: str) -> str:
    """An Entra-shaped Teams user token for the exchange (tenant LOCAL_TEAMS_TENANT)."""
    base = stack["identityEndpoint"].rsplit("/msi/", 1)[0]
    response = requests.post(f"{base}/_local/entra-user-token", json={"oid": oid, "appId": app_id}, timeout=10)
    response.raise_for_status()
    return response.json()["token"]


def principal(provider: str, user_id: str, roles: list[str], **extra: Any) -> dict[str, str]:
    """A Static Web Apps principal header (any provider, any roles)."""
    document = {"identityProvider": provider, "userId": user_id, "userDetails": f"{user_id}@example.test",
                "userRoles": roles, **extra}
    return {"x-ms-client-principal": base64.b64encode(json.dumps(document).encode()).decode()}


def error_code(response: requests.Response) -> str:
    """The contract's error code, after checking the error's shape and no-store."""
    assert response.headers.get("Cache-Control") == "no-store"
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["code"]
