"""A bearer token's dates and address claims count only with the JSON types their standards give
them: ``exp``/``iat``/``nbf`` numbers (RFC 7519 §2), ``iat`` present (RFC 9068 §2.2),
``email_verified`` the boolean ``true`` (OIDC Core §5.1), and ``preferred_username``/``upn`` an
address only from Microsoft Entra. In process, against a local issuer started in the test's loop
(tests/attacks/test_bearer_claims.py makes the same attacks over HTTP)."""

from __future__ import annotations

import time
from typing import Any, AsyncIterator

import jwt
import pytest
import pytest_asyncio

from shared import caller as caller_module
from shared import oidc
from shared.errors import Unauthenticated

AUDIENCE = "api://acs-token-service"
ENTRA = "https://login.microsoftonline.com/72f988bf-0000-4000-8000-00000000d0c1/v2.0"


@pytest_asyncio.fixture(autouse=True)
async def fresh_verifier() -> AsyncIterator[None]:
    await caller_module.close()
    yield
    await caller_module.close()


def _token(issuer: Any, **changes: Any) -> str:
    """An RFC 9068-shaped access token; a claim given as None is left out."""
    now = int(time.time())
    claims = {"iss": issuer.issuer, "sub": "user-42", "aud": AUDIENCE, "client_id": "c", "iat": now, "exp": now + 600,
              **changes}
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, issuer.private_key, algorithm="RS256", headers={"kid": issuer.kid, "typ": "at+jwt"})


async def _verify(running: Any, token: str) -> oidc.VerifiedToken:
    return await oidc.verify_bearer_token(token, issuer=running.url, audience=AUDIENCE, algorithms=["RS256"],
                                          max_lifetime_seconds=3600)


async def test_a_token_with_number_dates_is_accepted(local_issuer):
    verified = await _verify(local_issuer, _token(local_issuer.issuer, nbf=int(time.time()) - 5))

    assert verified.subject == "user-42"


DATES: dict[str, Any] = {
    "no iat": lambda now: {"iat": None},
    "exp a string": lambda now: {"exp": str(now + 600)},
    "exp a bool": lambda now: {"exp": True},
    "iat a string": lambda now: {"iat": str(now)},
    "iat a float string far back": lambda now: {"iat": f"{now - 86_400 * 30}.0"},
    "iat a bool": lambda now: {"iat": True},
    "nbf a string": lambda now: {"nbf": str(now - 5)},
    "nbf a list": lambda now: {"nbf": [now]},
    "exp ten years after iat": lambda now: {"exp": now + 10 * 365 * 86_400},
    "iat thirty days back": lambda now: {"iat": now - 30 * 86_400},
}


@pytest.mark.parametrize("changes", DATES.values(), ids=DATES.keys())
async def test_a_date_that_is_missing_or_not_a_number_is_refused(local_issuer, changes):
    token = _token(local_issuer.issuer, **changes(int(time.time())))

    with pytest.raises(Unauthenticated) as refused:
        await _verify(local_issuer, token)

    assert refused.value.code == "InvalidBearerToken"


@pytest.mark.parametrize("verified", [True, None], ids=["email-verified-true", "no-email-verified-claim"])
async def test_an_email_the_issuer_does_not_disown_is_the_callers_address(local_issuer, verified):
    token = _token(local_issuer.issuer, email="ada@contoso.example", email_verified=verified)

    assert (await _verify(local_issuer, token)).email == "ada@contoso.example"


@pytest.mark.parametrize("verified", [False, "true", "false", 1, 0, "yes", [True]])
async def test_email_verified_anything_but_true_is_no_address(local_issuer, verified):
    token = _token(local_issuer.issuer, email="ada@contoso.example", email_verified=verified)

    assert (await _verify(local_issuer, token)).email is None


@pytest.mark.parametrize("claim", ["preferred_username", "upn"])
async def test_a_name_claim_of_another_issuer_is_no_address(local_issuer, claim):
    token = _token(local_issuer.issuer, **{claim: "ada@contoso.example"})

    assert (await _verify(local_issuer, token)).email is None


@pytest.mark.parametrize("claim", ["preferred_username", "upn"])
def test_a_name_claim_of_microsoft_entra_is_the_callers_address(claim):
    """Entra's upn and v2 preferred_username are the sign-in name in the tenant
    (learn.microsoft.com/entra/identity-platform/access-token-claims-reference). No local issuer
    can be an Entra host, so the claim reader is called with the claims verification returns."""
    assert oidc._email({"iss": ENTRA, claim: "ada@contoso.example"}) == "ada@contoso.example"
    assert oidc._email({"iss": ENTRA, claim: "ada@contoso.example", "email_verified": False}) is None
