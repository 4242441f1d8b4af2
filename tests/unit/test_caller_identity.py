"""Who the caller is: client principals from the platform and OIDC bearer tokens, checked
against a real local issuer (discovery, JWKS, RS256 signatures) over HTTP."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import jwt
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack import oidc_issuer
from devstack.oidc_issuer import LocalIssuer, RunningIssuer
from shared import caller as caller_module
from shared import oidc
from shared.caller import Caller, identify_caller
from shared.errors import DependencyUnavailable, Unauthenticated
from shared.settings import Settings, SettingsError

pytestmark = pytest.mark.asyncio

AUDIENCE = "api://acs-token-service"


def encode_principal(principal: Any) -> str:
    return base64.b64encode(json.dumps(principal).encode()).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_parts(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


SWA_GITHUB = {
    "identityProvider": "GitHub",
    "userId": "d75b260a64504067bfc5b2905e3b8182",
    "userDetails": "octocat",
    "userRoles": ["anonymous", "authenticated", "support"],
}

EASY_AUTH_AAD = {
    "auth_typ": "aad",
    "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    "claims": [
        {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier", "val": "pairwise-sub-1"},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": "6c2d6a9e-0f0e-4c4e-9d0e-1f2a3b4c5d6e"},
        {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "admin"},
        {"typ": "roles", "val": "reader"},
        {"typ": "name", "val": "Ada"},
    ],
}


class FakeClock:
    """Stands in for the key cache's clock so "a minute later" needs no waiting."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest_asyncio.fixture(autouse=True)
async def fresh_verifier() -> AsyncIterator[None]:
    """Each test starts with no cached keys and leaves no open HTTP session behind."""
    await caller_module.close()
    yield
    await caller_module.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(oidc, "_monotonic", fake)
    return fake


@pytest.fixture
def bearer_settings(local_issuer: RunningIssuer, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(OIDC_ISSUER=local_issuer.url, OIDC_AUDIENCE=AUDIENCE)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def expect_unauthenticated(headers: dict[str, str], settings: Settings, code: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as raised:
        await identify_caller(headers, settings)
    assert raised.value.code == code
    for value in headers.values():  # the message never echoes what the caller sent
        assert len(value) < 8 or value not in raised.value.message
    return raised.value


# --- client principals -------------------------------------------------------------------------


async def test_static_web_apps_principal_names_a_provider_qualified_user(make_settings):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="true")

    caller = await identify_caller({"x-ms-client-principal": encode_principal(SWA_GITHUB)}, settings)

    assert caller == Caller(
        app_user_id="github|d75b260a64504067bfc5b2905e3b8182",
        roles=frozenset({"anonymous", "authenticated", "support"}),
        source="client-principal",
        provider="github",
    )


async def test_user_id_keeps_its_case_while_provider_is_lower_cased(make_settings):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="true")
    principal = {**SWA_GITHUB, "identityProvider": "AAD", "userId": "AbC-123"}

    caller = await identify_caller({"x-ms-client-principal": encode_principal(principal)}, settings)

    assert caller.app_user_id == "aad|AbC-123"


async def test_principal_header_name_is_found_in_any_case(make_settings):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="true")

    caller = await identify_caller({"X-MS-CLIENT-PRINCIPAL": encode_principal(SWA_GITHUB)}, settings)

    assert caller.app_user_id.startswith("github|")


async def test_principal_is_ignored_when_the_platform_is_not_trusted(make_settings):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="false")

    await expect_unauthenticated({"x-ms-client-principal": encode_principal(SWA_GITHUB)}, settings, "MissingCaller")


async def test_malformed_principal_is_ignored_when_the_platform_is_not_trusted(make_settings):
    await expect_unauthenticated({"x-ms-client-principal": "%%%"}, make_settings(), "MissingCaller")


async def test_request_without_identity_is_missing_caller(make_settings):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="true")

    await expect_unauthenticated({"accept": "application/json"}, settings, "MissingCaller")
    await expect_unauthenticated({"authorization": "Basic dXNlcjpwYXNz"}, settings, "MissingCaller")


async def test_anonymous_principal_is_not_a_caller(make_settings):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="true")
    anonymous = {"identityProvider": "", "userId": "", "userDetails": "", "userRoles": ["anonymous"]}

    await expect_unauthenticated({"x-ms-client-principal": encode_principal(anonymous)}, settings, "MissingCaller")


MALFORMED_PRINCIPALS = {
    "empty header": "",
    "not base64": "!!!not base64!!!",
    "base64 of non-json": base64.b64encode(b"hello there").decode(),
    "base64 of invalid utf-8": base64.b64encode(b"\xff\xfe{}").decode(),
    "json array": encode_principal([SWA_GITHUB]),
    "json string": encode_principal("github|someone"),
    "json null": encode_principal(None),
    "unknown shape": encode_principal({"user": "someone"}),
    "missing provider": encode_principal({**SWA_GITHUB, "identityProvider": None}),
    "empty provider": encode_principal({**SWA_GITHUB, "identityProvider": "  "}),
    "provider with separator": encode_principal({**SWA_GITHUB, "identityProvider": "git|hub"}),
    "missing user id": encode_principal({k: v for k, v in SWA_GITHUB.items() if k != "userId"}),
    "empty user id": encode_principal({**SWA_GITHUB, "userId": ""}),
    "numeric user id": encode_principal({**SWA_GITHUB, "userId": 12345}),
    "control character in user id": encode_principal({**SWA_GITHUB, "userId": "abc\n123"}),
    "lone surrogate in user id": base64.b64encode(
        b'{"identityProvider":"github","userId":"ab\\ud800","userRoles":["authenticated"]}'
    ).decode(),
    "roles not a list": encode_principal({**SWA_GITHUB, "userRoles": "admin"}),
    "role not a string": encode_principal({**SWA_GITHUB, "userRoles": ["authenticated", 7]}),
    "over 8 KB": encode_principal({**SWA_GITHUB, "userDetails": "x" * 9000}),
    "deeply nested": base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode()[:8000],
    "easy auth claims not a list": encode_principal({"auth_typ": "aad", "claims": {"oid": "x"}}),
    "easy auth claim with number value": encode_principal({"auth_typ": "aad", "claims": [{"typ": "oid", "val": 5}]}),
    "easy auth without user id claim": encode_principal({"auth_typ": "aad", "claims": [{"typ": "name", "val": "Ada"}]}),
    "easy auth without provider": encode_principal({"claims": [{"typ": "oid", "val": "x"}]}),
}


@pytest.mark.parametrize("raw", MALFORMED_PRINCIPALS.values(), ids=MALFORMED_PRINCIPALS.keys())
async def test_malformed_trusted_principal_is_refused(make_settings, raw):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="true")

    error = await expect_unauthenticated({"x-ms-client-principal": raw}, settings, "InvalidPrincipal")

    assert "principal" in error.message


async def test_easy_auth_principal_uses_object_id_and_role_claims(make_settings):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="true")

    caller = await identify_caller({"x-ms-client-principal": encode_principal(EASY_AUTH_AAD)}, settings)

    assert caller == Caller(
        app_user_id="aad|6c2d6a9e-0f0e-4c4e-9d0e-1f2a3b4c5d6e",
        roles=frozenset({"admin", "reader"}),
        source="client-principal",
        provider="aad",
        object_id="6c2d6a9e-0f0e-4c4e-9d0e-1f2a3b4c5d6e",
    )


async def test_easy_auth_provider_comes_from_idp_header_when_principal_lacks_it(make_settings):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="true")
    principal = {"claims": [{"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier", "val": "1042"}]}

    caller = await identify_caller(
        {"x-ms-client-principal": encode_principal(principal), "x-ms-client-principal-idp": "Google"}, settings
    )

    assert caller.app_user_id == "google|1042"
    assert caller.roles == frozenset()


# --- bearer tokens -----------------------------------------------------------------------------


async def mint_over_http(issuer_url: str, body: dict[str, Any]) -> str:
    """Mint a token the way a dev tool would: through the issuer's /_local/token endpoint."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{issuer_url}/_local/token", json=body) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["token"]


async def test_valid_bearer_token_names_issuer_and_subject(local_issuer, bearer_settings):
    token = await mint_over_http(local_issuer.url, {"sub": "user-42", "aud": AUDIENCE, "roles": ["support"]})

    caller = await identify_caller(bearer(token), bearer_settings)

    assert caller == Caller(
        app_user_id=f"{local_issuer.url}|user-42", roles=frozenset({"support"}), source="bearer", provider=local_issuer.url
    )


async def test_issuer_configured_with_a_trailing_slash_still_verifies(local_issuer, make_settings):
    """Entra's v1 issuer is usually pasted with its trailing slash; discovery must still be found."""
    settings = make_settings(OIDC_ISSUER=local_issuer.url + "/", OIDC_AUDIENCE=AUDIENCE)
    token = await mint_over_http(local_issuer.url, {"sub": "user-7", "aud": AUDIENCE})

    caller = await identify_caller(bearer(token), settings)

    assert caller.app_user_id == f"{local_issuer.url}|user-7"


async def test_bearer_token_audience_may_be_a_list(local_issuer, bearer_settings):
    token = local_issuer.issuer.mint("user-42", ["other-api", AUDIENCE])

    caller = await identify_caller(bearer(token), bearer_settings)

    assert caller.app_user_id == f"{local_issuer.url}|user-42"


async def test_bearer_token_expired_within_clock_leeway_is_accepted(local_issuer, bearer_settings):
    token = local_issuer.issuer.mint("user-42", AUDIENCE, expires_in_seconds=-10)

    caller = await identify_caller(bearer(token), bearer_settings)

    assert caller.source == "bearer"


async def test_trusted_principal_wins_over_bearer_token(local_issuer, make_settings):
    settings = make_settings(TRUST_CLIENT_PRINCIPAL="true", OIDC_ISSUER=local_issuer.url, OIDC_AUDIENCE=AUDIENCE)
    headers = {"x-ms-client-principal": encode_principal(SWA_GITHUB), **bearer(local_issuer.issuer.mint("u", AUDIENCE))}

    caller = await identify_caller(headers, settings)

    assert caller.source == "client-principal"
    assert local_issuer.issuer.requests["/jwks"] == 0


async def test_bearer_token_is_used_when_principal_is_not_trusted(local_issuer, bearer_settings):
    headers = {"x-ms-client-principal": encode_principal(SWA_GITHUB), **bearer(local_issuer.issuer.mint("u", AUDIENCE))}

    caller = await identify_caller(headers, bearer_settings)

    assert caller.app_user_id == f"{local_issuer.url}|u"


async def test_bearer_token_is_refused_when_no_issuer_is_configured(local_issuer, make_settings):
    token = local_issuer.issuer.mint("user-42", AUDIENCE)

    error = await expect_unauthenticated(bearer(token), make_settings(), "InvalidBearerToken")

    assert "not configured" in error.message


def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(issuer: LocalIssuer) -> bytes:
    return issuer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def good_claims(issuer: LocalIssuer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer.issuer, "sub": "user-42", "aud": AUDIENCE, "iat": now, "exp": now + 600, **changes}


def hs256_with_public_key(issuer: LocalIssuer) -> str:
    signing_input = unsigned_parts({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}, good_claims(issuer))
    signature = hmac.new(public_pem(issuer), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def signed(issuer: LocalIssuer, claims: dict[str, Any], key: rsa.RSAPrivateKey | None = None, kid: str | None = None) -> str:
    """A token with exactly these claims, signed by the issuer's key unless another is given."""
    return jwt.encode(claims, key or issuer.private_key, algorithm="RS256", headers={"kid": kid or issuer.kid})


def without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if k != name}


def with_tampered_subject(issuer: LocalIssuer) -> str:
    header, _, signature = issuer.mint("user-42", AUDIENCE).split(".")
    return f"{header}.{b64url(json.dumps(good_claims(issuer, sub='admin')).encode())}.{signature}"


BAD_TOKENS: dict[str, Callable[[LocalIssuer], str]] = {
    "wrong audience": lambda i: i.mint("user-42", "api://someone-else"),
    "wrong issuer": lambda i: i.mint("user-42", AUDIENCE, iss="https://login.example.com"),
    "issuer differing by case": lambda i: i.mint("user-42", AUDIENCE, iss=i.issuer.upper()),
    "expired": lambda i: i.mint("user-42", AUDIENCE, expires_in_seconds=-120),
    "not valid yet": lambda i: i.mint("user-42", AUDIENCE, nbf=time.time() + 600),
    "alg none": lambda i: unsigned_parts({"alg": "none", "typ": "JWT", "kid": i.kid}, good_claims(i)) + ".",
    "HS256 signed with the public key": hs256_with_public_key,
    "algorithm not configured (PS256)": lambda i: i.mint("user-42", AUDIENCE, alg="PS256"),
    "unknown kid": lambda i: signed(i, good_claims(i), key=other_rsa_key(), kid="unknown"),
    "known kid, other key": lambda i: signed(i, good_claims(i), key=other_rsa_key()),
    "tampered claims": with_tampered_subject,
    "no sub": lambda i: signed(i, without(good_claims(i), "sub")),
    "no exp": lambda i: signed(i, without(good_claims(i), "exp")),
    "numeric sub": lambda i: signed(i, good_claims(i, sub=42)),
    "control character in sub": lambda i: signed(i, good_claims(i, sub="user\n42")),
    "garbage": lambda i: "this-is-not-a-jwt",
    "three garbage segments": lambda i: "a.b.c",
    "empty": lambda i: "",
    "oversized": lambda i: "a" * 20_000,
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_bearer_token_is_refused(local_issuer, bearer_settings, make_token):
    token = make_token(local_issuer.issuer)

    await expect_unauthenticated(bearer(token) if token else {"Authorization": "Bearer "}, bearer_settings, "InvalidBearerToken")


async def test_algorithm_is_accepted_once_configured(local_issuer, make_settings):
    settings = make_settings(OIDC_ISSUER=local_issuer.url, OIDC_AUDIENCE=AUDIENCE, OIDC_ALGORITHMS="RS256,PS256")
    token = local_issuer.issuer.mint("user-42", AUDIENCE, alg="PS256")

    caller = await identify_caller(bearer(token), settings)

    assert caller.app_user_id == f"{local_issuer.url}|user-42"


async def test_unreachable_issuer_is_a_dependency_failure_not_a_bad_token(make_settings):
    with socket.socket() as probe:  # a port that was free a moment ago, so nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(OIDC_ISSUER=f"http://127.0.0.1:{port}", OIDC_AUDIENCE=AUDIENCE)
    claims = {"iss": f"http://127.0.0.1:{port}", "sub": "u", "aud": AUDIENCE, "exp": int(time.time()) + 600}
    token = jwt.encode(claims, other_rsa_key(), algorithm="RS256", headers={"kid": "k"})

    with pytest.raises(DependencyUnavailable):
        await identify_caller(bearer(token), settings)


async def test_issuer_whose_discovery_names_another_issuer_is_not_trusted(make_settings):
    impostor = LocalIssuer("http://127.0.0.1:9")
    runner = web.AppRunner(oidc_issuer.create_app(impostor))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        settings = make_settings(OIDC_ISSUER=url, OIDC_AUDIENCE=AUDIENCE)
        token = impostor.mint("u", AUDIENCE, iss=url)

        with pytest.raises(DependencyUnavailable):
            await identify_caller(bearer(token), settings)
    finally:
        await runner.cleanup()


async def test_plain_http_issuer_elsewhere_than_this_machine_is_a_misconfiguration(make_settings):
    with pytest.raises(SettingsError, match="OIDC_ISSUER"):
        make_settings(OIDC_ISSUER="http://login.example.com", OIDC_AUDIENCE=AUDIENCE)


async def test_keys_are_fetched_once_for_many_verifications(local_issuer, bearer_settings):
    tokens = [local_issuer.issuer.mint(f"user-{n}", AUDIENCE) for n in range(40)]

    concurrent = await asyncio.gather(*(identify_caller(bearer(t), bearer_settings) for t in tokens[:20]))
    sequential = [await identify_caller(bearer(t), bearer_settings) for t in tokens[20:]]

    assert {c.app_user_id for c in concurrent + sequential} == {f"{local_issuer.url}|user-{n}" for n in range(40)}
    assert local_issuer.issuer.requests["/.well-known/openid-configuration"] == 1
    assert local_issuer.issuer.requests["/jwks"] == 1


async def test_unknown_kids_refetch_keys_at_most_once_a_minute(local_issuer, bearer_settings, clock):
    issuer = local_issuer.issuer
    await identify_caller(bearer(issuer.mint("user-1", AUDIENCE)), bearer_settings)
    clock.advance(120)

    for n in range(10):
        spam = signed(issuer, good_claims(issuer), key=other_rsa_key(), kid=f"spam-{n}")
        with pytest.raises(Unauthenticated):
            await identify_caller(bearer(spam), bearer_settings)
        clock.advance(5)

    assert issuer.requests["/jwks"] == 2  # the first fetch, and one refetch for all the spam


async def test_rotated_signing_key_is_picked_up(local_issuer, bearer_settings, clock):
    issuer = local_issuer.issuer
    await identify_caller(bearer(issuer.mint("user-1", AUDIENCE)), bearer_settings)
    clock.advance(61)
    issuer.rotate()

    caller = await identify_caller(bearer(issuer.mint("user-1", AUDIENCE)), bearer_settings)

    assert caller.app_user_id == f"{local_issuer.url}|user-1"
    assert issuer.requests["/jwks"] == 2


async def test_cached_keys_keep_working_while_the_issuer_is_down(local_issuer, bearer_settings, clock):
    issuer = local_issuer.issuer
    await identify_caller(bearer(issuer.mint("user-1", AUDIENCE)), bearer_settings)
    await local_issuer.close()
    clock.advance(oidc.KEYS_TTL_SECONDS + 1)

    caller = await identify_caller(bearer(issuer.mint("user-2", AUDIENCE)), bearer_settings)

    assert caller.app_user_id == f"{local_issuer.url}|user-2"


# --- https issuers -----------------------------------------------------------------------------


def write_local_ca_and_server_cert(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA (its certificate written to a file, as SSL_CERT_FILE would name) and a
    server context for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    return ca_file, server_context


@pytest_asyncio.fixture
async def https_issuer(tmp_path: Path) -> AsyncIterator[tuple[RunningIssuer, Path]]:
    ca_file, server_context = write_local_ca_and_server_cert(tmp_path)
    running = await oidc_issuer.start(ssl_context=server_context)
    try:
        yield running, ca_file
    finally:
        await running.close()


async def test_https_issuer_is_trusted_through_ssl_cert_file(https_issuer, make_settings, monkeypatch):
    running, ca_file = https_issuer
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    settings = make_settings(OIDC_ISSUER=running.url, OIDC_AUDIENCE=AUDIENCE)

    caller = await identify_caller(bearer(running.issuer.mint("user-7", AUDIENCE)), settings)

    assert running.url.startswith("https://")
    assert caller.app_user_id == f"{running.url}|user-7"


async def test_https_issuer_with_an_untrusted_certificate_is_unavailable(https_issuer, make_settings, monkeypatch):
    running, _ = https_issuer
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    settings = make_settings(OIDC_ISSUER=running.url, OIDC_AUDIENCE=AUDIENCE)

    with pytest.raises(DependencyUnavailable):
        await identify_caller(bearer(running.issuer.mint("user-7", AUDIENCE)), settings)

    assert running.issuer.requests["/.well-known/openid-configuration"] == 0


async def test_an_overlong_provider_header_is_read_afresh_and_never_remembered():
    """The memory of read principals is keyed on the principal and the provider header; no
    provider name is longer than 64 characters, so a longer header (which only a client could
    send where the platform does not strip it) must not grow that memory, and must be read the
    same way each time: ignored when the principal names its provider, refused when it must be used."""
    named = encode_principal({"identityProvider": "github", "userId": "u-long-idp", "userRoles": ["authenticated"]})
    unnamed = encode_principal({"claims": [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier",
                                            "val": "0f0e0d0c-0b0a-4909-8807-060504030201"}]})
    before = len(caller_module._PRINCIPALS)
    for n in range(50):
        long_idp = "x" * 65 + str(n)
        assert caller_module.caller_from_client_principal(named, long_idp).app_user_id == "github|u-long-idp"
        with pytest.raises(Unauthenticated):
            caller_module.caller_from_client_principal(unnamed, long_idp)
    assert len(caller_module._PRINCIPALS) == before
    assert caller_module.caller_from_client_principal(named, "aad").app_user_id == "github|u-long-idp"
    assert len(caller_module._PRINCIPALS) == before + 1
