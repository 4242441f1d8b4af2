"""Fixtures of the reliability tests: the local OIDC issuer, extra function hosts with other
settings, and the orphan check."""

from __future__ import annotations

import base64
from typing import Any, Callable, Iterator

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from tests.conftest import ROOT, Api, Emulator, FunctionHost
from tests.reliability.support import FIGURES, SECRETS, write_figures


class Issuer:
    """The stack's local OIDC issuer: mints tokens, and publishes the key tests try to abuse."""

    def __init__(self, stack: dict) -> None:
        self.url = stack["oidcIssuer"]
        self.audience = stack["oidcAudience"]
        jwks = requests.get(f"{self.url}/jwks", timeout=10).json()["keys"]
        self.kid = jwks[-1]["kid"]
        public_key = RSAAlgorithm.from_jwk(jwks[-1])
        self.public_pem = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def mint(self, sub: str, **body: Any) -> str:
        """A token signed by the issuer; ``body`` overrides aud, iss, expiresInSeconds, nbf, alg…"""
        response = requests.post(
            f"{self.url}/_local/token", json={"sub": sub, "aud": self.audience, **body}, timeout=10
        )
        response.raise_for_status()
        token = response.json()["token"]
        SECRETS.add(token)
        return token


@pytest.fixture(scope="session")
def issuer(stack: dict) -> Issuer:
    return Issuer(stack)


@pytest.fixture(scope="session")
def start_host(stack: dict) -> Iterator[Callable[[dict[str, str], str], Api]]:
    """Start a second function host with some settings overridden; stopped at the end."""
    hosts: list[FunctionHost] = []

    def start(overrides: dict[str, str], name: str) -> Api:
        host = FunctionHost(stack, overrides, name)
        hosts.append(host)
        return Api(host.base, log=host.log)

    yield start
    for host in hosts:
        host.stop()


def mapped_identities(table: Any) -> set[str]:
    """Every ACS identity the mapping table points at."""
    return {e["CommunicationUserId"] for e in table.query_entities("RowKey eq 'identity'")}


def orphans(emulator: Emulator, table: Any) -> set[str]:
    """Live ACS identities that no mapping points at: nobody can ever use or delete them."""
    return emulator.identities() - mapped_identities(table)


@pytest.fixture
def no_new_orphans(emulator: Emulator, table: Any) -> Iterator[None]:
    """Fails the test if it leaves ACS identities behind that no mapping points at."""
    before = orphans(emulator, table)
    yield
    new = orphans(emulator, table) - before
    FIGURES.orphans_found += len(new)
    assert not new, f"{len(new)} ACS identities were left without a mapping"


def basic_principal(raw: dict) -> str:
    """Any dict as an x-ms-client-principal value (base64 JSON)."""
    import json

    return base64.b64encode(json.dumps(raw).encode()).decode()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if sum(FIGURES.cases.values()) or FIGURES.faults_survived:
        terminalreporter.write_line(FIGURES.summary())
        write_figures(ROOT / "test-artifacts" / "reliability-figures.json")
