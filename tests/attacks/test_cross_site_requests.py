"""Another site's page, open in a signed-in person's browser, must not act as that person.

Behind Static Web Apps the caller is whoever the session cookie names, so a request a hostile
page makes the browser send arrives with the victim's principal. The browser only sends such a
request without a CORS preflight when it is a "simple" one: POST with no body or with a body
whose Content-Type is form, multipart or text/plain, or absent (a Blob body without a type). So
the service must refuse (a) a body that does not say it is JSON, and (b) any state-changing
request the browser marks as coming from another site (Sec-Fetch-Site: cross-site, sent by every
current browser: https://www.w3.org/TR/fetch-metadata/). Whether the platform's session cookie is
SameSite=Lax or None is not documented, so the service should not rest on it.
"""

from __future__ import annotations

import json

import pytest

from tests.attacks.conftest import remove_tombstone
from tests.conftest import Api, Emulator, expect_error, new_user

CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Origin": "https://attacker.example"}


def test_the_operator_endpoint_refuses_a_body_sent_without_a_json_content_type(api: Api, table):
    """A hostile page can POST a JSON text with no Content-Type (fetch with mode no-cors and a
    Blob body): no preflight, the admin's cookie goes along. Today that tombstones the victim,
    and the next sweep deletes their identity.

    Each defence is shown on its own: as a current browser sends it (marked cross-site), the
    request is refused as another site's before the caller is read; and the same body with
    nothing marking it is refused for its missing Content-Type. (The request with both marks is
    one refusal, and which comes first is the service's choice: the cross-site check runs before
    the caller is identified, the body is read after.)"""
    victim = new_user()
    assert api.token(victim).status_code == 200
    admin = new_user(roles=("anonymous", "authenticated", "admin"))
    body = json.dumps({"appUserIds": [victim.app_user_id]}).encode()
    try:
        response = api.call("POST", "/api/manage/deleted-users", admin, headers=CROSS_SITE, data=body)
        assert "content-type" not in {name.lower() for name in response.request.headers}
        expect_error(response, 403, "CrossSiteRequest")
        unmarked = api.call("POST", "/api/manage/deleted-users", admin, data=body)
        assert "content-type" not in {name.lower() for name in unmarked.request.headers}
        expect_error(unmarked, 400, "UnsupportedContentType")
        assert api.token(victim, fresh=True).status_code == 200, "the victim was tombstoned by another site's page"
    finally:
        remove_tombstone(table, victim.app_user_id)
        api.call("DELETE", "/api/identity", victim)


@pytest.fixture(scope="module")
def small_budgets(start_host) -> Api:
    return start_host({"TOKEN_REQUESTS_PER_MINUTE": "3", "IDENTITY_CHANGES_PER_MINUTE": "2"}, "cross-site")


def _refused_as_cross_site(response) -> None:
    assert response.status_code == 403, f"a cross-site request was served: {response.status_code} {response.text[:200]}"
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]


def test_another_site_cannot_revoke_a_signed_in_persons_tokens_or_spend_their_budget(small_budgets: Api, emulator: Emulator):
    """POST /api/token/revoke has no body: a simple request any page can make the browser send."""
    victim = new_user()
    issued = small_budgets.token(victim)
    assert issued.status_code == 200, issued.text
    for _ in range(2):
        _refused_as_cross_site(small_budgets.call("POST", "/api/token/revoke", victim, headers=CROSS_SITE))
    assert emulator.verify(issued.json()["token"])["valid"], "another site's page revoked the victim's tokens"
    assert small_budgets.call("POST", "/api/token/revoke", victim).status_code == 204, "the victim's own revoke was throttled"
    small_budgets.call("DELETE", "/api/identity", victim)


def test_another_site_cannot_spend_a_signed_in_persons_token_budget(small_budgets: Api, emulator: Emulator):
    """POST /api/token without a body is a simple request too: each one costs the victim a token
    request of their per-minute limit (and the first makes their identity)."""
    victim = new_user()
    before = emulator.identities()
    for _ in range(3):
        _refused_as_cross_site(small_budgets.call("POST", "/api/token", victim, headers=CROSS_SITE))
    assert emulator.identities() == before
    own = small_budgets.token(victim)
    assert own.status_code == 200, f"the victim's own request after another site's: {own.status_code} {own.text[:200]}"
    small_budgets.call("DELETE", "/api/identity", victim)
