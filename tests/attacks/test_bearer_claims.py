"""Bearer-token claims of the wrong JSON type must not slip past the checks built on them.

RFC 7519 §2 makes ``exp`` and ``iat`` NumericDates (JSON numbers), but PyJWT accepts any value
``int()`` takes, strings included ("4102444800"), and the service's lifetime check only looks at
numbers: so a ten-year token whose ``exp`` is a string is not a ten-year token to it. In the same
way ``email_verified`` is a JSON boolean (OIDC Core §5.1), and anything but ``true`` must count as
unverified; and ``preferred_username`` (OIDC Core §5.1: "MUST NOT rely upon this value being
unique") or ``upn`` from an issuer that is not Microsoft Entra is a name the person chose, not an
address of the domain the allow-list names.

The tokens are signed by an issuer of the tests' own (devstack.oidc_issuer in this process), since
the stack's issuer always writes ``exp`` itself."""

from __future__ import annotations

import time

import pytest

from tests.attacks.conftest import OwnIssuer
from tests.conftest import Api, Emulator, expect_error

ALLOWED_DOMAIN = "allowed.example"
DAY = 86_400


@pytest.fixture(scope="module")
def bearer_api(start_host, own_issuer: OwnIssuer) -> Api:
    return start_host({
        "OIDC_ISSUER": own_issuer.url, "OIDC_AUDIENCE": own_issuer.audience, "TRUST_CLIENT_PRINCIPAL": "false",
        "ACCESS_REQUIRED_ROLES": "*", "ACCESS_ALLOWED_EMAIL_DOMAINS": ALLOWED_DOMAIN,
    }, "bearer-claims")


def _token(api: Api, headers: dict[str, str]):
    return api.call("POST", "/api/token", headers=headers)


def test_a_well_formed_token_of_the_allowed_domain_is_served(bearer_api: Api, own_issuer: OwnIssuer):
    """The host and issuer work: what the other tests refuse is refused for its claims alone."""
    headers = own_issuer.headers(f"ada-{time.time_ns()}", email=f"ada@{ALLOWED_DOMAIN}", email_verified=True)
    response = _token(bearer_api, headers)
    assert response.status_code == 200, response.text
    assert bearer_api.call("DELETE", "/api/identity", headers=headers).status_code == 204


@pytest.mark.parametrize("claims", [
    pytest.param(lambda now: {"exp": str(now + 10 * 365 * DAY)}, id="exp-a-string-ten-years-ahead"),
    pytest.param(lambda now: {"iat": str(now - 30 * DAY), "exp": now + 3600}, id="iat-a-string-thirty-days-back"),
])
def test_a_token_valid_for_years_is_refused_whatever_json_type_its_dates_have(bearer_api: Api, emulator: Emulator,
                                                                              own_issuer: OwnIssuer, claims):
    before = emulator.identities()
    headers = own_issuer.headers(email=f"mallory@{ALLOWED_DOMAIN}", **claims(int(time.time())))
    expect_error(_token(bearer_api, headers), 401, "InvalidBearerToken")
    assert emulator.identities() == before


@pytest.mark.parametrize("claims", [
    pytest.param({"email": f"mallory@{ALLOWED_DOMAIN}", "email_verified": "false"}, id="email-verified-false-as-a-string"),
    pytest.param({"preferred_username": f"mallory@{ALLOWED_DOMAIN}"}, id="preferred-username-of-a-non-entra-issuer"),
    pytest.param({"upn": f"mallory@{ALLOWED_DOMAIN}"}, id="upn-of-a-non-entra-issuer"),
])
def test_an_address_the_issuer_does_not_vouch_for_does_not_pass_the_domain_check(bearer_api: Api, emulator: Emulator,
                                                                                 own_issuer: OwnIssuer, claims: dict):
    before = emulator.identities()
    expect_error(_token(bearer_api, own_issuer.headers(**claims)), 403, "EmailDomainNotAllowed")
    assert emulator.identities() == before
