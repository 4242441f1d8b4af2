"""One user can never obtain, revoke or delete another user's identity or token.

The caller is whoever the trusted principal or the verified bearer token says, and nothing else
in the request: ids in query strings, bodies, look-alike headers or paths change nothing. Users
whose ids differ only by case, escaping, Unicode form or provider prefix are different users.
"""

from __future__ import annotations

import json
import unicodedata
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Api, Emulator, User, new_user, principal_header
from tests.reliability.conftest import Issuer, basic_principal
from tests.reliability.support import SECRETS, error_body


def _token(api: Api, user: User | None = None, headers: dict | None = None) -> dict:
    response = api.call("POST", "/api/token", user, headers={"Cache-Control": "no-cache", **(headers or {})})
    assert response.status_code == 200, response.text
    body = response.json()
    SECRETS.add(body["token"], *(user.headers.values() if user else ()), *(headers or {}).values())
    return body


def _lookalike_headers(victim: User, victim_identity: str) -> dict[str, str]:
    """Every other header a proxy or platform might use to name a user, all naming the victim."""
    return {
        "x-ms-client-principal-id": victim.user_id,
        "x-ms-client-principal-name": f"{victim.user_id}@example.test",
        "x-ms-client-principal-idp": victim.provider,
        "x-ms-client-principal-user-id": victim.app_user_id,
        "x-forwarded-user": victim.app_user_id,
        "x-user-id": victim.app_user_id,
        "x-communication-user-id": victim_identity,
        "x-ms-original-url": f"/api/identity?appUserId={victim.app_user_id}",
    }


def _victim_query(victim: User, victim_identity: str) -> dict[str, str]:
    return {"appUserId": victim.app_user_id, "userId": victim.user_id, "communicationUserId": victim_identity, "id": victim_identity}


@pytest.fixture
def victim(api: Api) -> tuple[User, dict]:
    user = new_user()
    return user, _token(api, user)


def _victim_untouched(api: Api, emulator: Emulator, victim: User, issued: dict) -> None:
    assert issued["communicationUserId"] in emulator.identities()
    assert emulator.verify(issued["token"])["valid"], "the victim's token stopped working"
    mine = api.call("GET", "/api/identity", victim).json()
    assert mine["communicationUserId"] == issued["communicationUserId"]


def test_ids_in_query_headers_or_body_never_select_another_user(api: Api, emulator: Emulator, victim: tuple[User, dict]):
    target, target_issued = victim
    attacker = new_user()
    own = _token(api, attacker)
    stolen = target_issued["communicationUserId"]
    extra = _lookalike_headers(target, stolen)
    query = _victim_query(target, stolen)

    seen = api.call("GET", "/api/identity", attacker, headers=extra, params=query)
    assert seen.status_code == 200 and seen.json() == {"appUserId": attacker.app_user_id, "communicationUserId": own["communicationUserId"]}

    issued = api.call("POST", "/api/token", attacker, headers={**extra, "Cache-Control": "no-cache"}, params=query)
    assert issued.status_code == 200 and issued.json()["communicationUserId"] == own["communicationUserId"]
    assert emulator.verify(issued.json()["token"])["communicationUserId"] == own["communicationUserId"]
    SECRETS.add(issued.json()["token"])

    for field in ("communicationUserId", "appUserId", "userId"):
        refused = api.call("POST", "/api/token", attacker, json={field: stolen if field == "communicationUserId" else target.app_user_id})
        assert refused.status_code == 400 and error_body(refused)["code"] == "UnknownField"

    revoked = api.call("POST", "/api/token/revoke", attacker, headers=extra, params=query)
    assert revoked.status_code == 204
    assert not emulator.verify(own["token"])["valid"], "the caller's own token should be the one revoked"

    deleted = api.call("DELETE", "/api/identity", attacker, headers=extra, params=query)
    assert deleted.status_code == 204
    assert own["communicationUserId"] not in emulator.identities()

    _victim_untouched(api, emulator, target, target_issued)


@pytest.mark.parametrize("path", [
    "/api/identity/{id}", "/api/identity/{app}", "/api/token/{id}", "/api/token/revoke/{id}", "/api/identity/../identity",
])
def test_paths_naming_another_user_reach_nothing(api: Api, emulator: Emulator, victim: tuple[User, dict], path: str):
    target, target_issued = victim
    attacker = new_user()
    url = path.format(id=target_issued["communicationUserId"], app=target.app_user_id)
    for method in ("GET", "POST", "DELETE"):
        response = api.call(method, url, attacker)
        body = response.json() if response.content and "json" in response.headers.get("Content-Type", "") else {}
        assert target_issued["communicationUserId"] not in response.text and "token" not in body
        # No route takes an id: 404, except where the client normalises "../" back to the caller's
        # own /api/identity (the attacker has none: GET 404 IdentityNotFound, DELETE 204).
        assert response.status_code == 404 or (method == "DELETE" and response.status_code == 204), (method, url, response.status_code)
    _victim_untouched(api, emulator, target, target_issued)


def test_two_principal_headers_are_refused_not_merged(api: Api, emulator: Emulator, victim: tuple[User, dict]):
    """A request carrying the principal header twice (the victim's and the caller's) is refused;
    it must never be read as either user."""
    import http.client
    from urllib.parse import urlsplit

    target, target_issued = victim
    attacker = new_user()
    parts = urlsplit(api.base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("DELETE", "/api/identity")
    connection.putheader("x-ms-client-principal", target.headers["x-ms-client-principal"])
    connection.putheader("x-ms-client-principal", attacker.headers["x-ms-client-principal"])
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 401
    assert response.getheader("WWW-Authenticate", "").startswith("Bearer")
    body = json.loads(response.read())
    assert set(body) == {"error"} and body["error"]["code"] and "token" not in body
    connection.close()
    _victim_untouched(api, emulator, target, target_issued)


def test_ordinary_user_cannot_mark_another_user_deleted(api: Api, emulator: Emulator, victim: tuple[User, dict]):
    target, target_issued = victim
    for roles in (("authenticated",), ("authenticated", "Admin"), ("authenticated", "administrator")):
        attacker = new_user(roles=roles)
        response = api.call("POST", "/api/manage/deleted-users", attacker, json={"appUserIds": [target.app_user_id]})
        assert response.status_code == 403 and error_body(response)["code"] == "NotAdmin"
    assert api.token(target, fresh=True).status_code == 200
    _victim_untouched(api, emulator, target, target_issued)


_id_chars = st.sampled_from(list("aA1-_.|/\\#?%:@ ~+=é") + ["e\u0301", "\u00e9", "\u0130", "ß", "ss", "\u212a", "K"])
_user_id = st.lists(_id_chars, min_size=1, max_size=12).map("".join).filter(lambda s: s.strip() == s and s != "")


def _lookalikes(user_id: str) -> list[str]:
    """Ids a careless store might fold into ``user_id``: other case, escaping, Unicode form."""
    variants = [user_id.upper(), user_id.lower(), user_id.casefold(), unicodedata.normalize("NFC", user_id),
                unicodedata.normalize("NFD", user_id), unicodedata.normalize("NFKC", user_id),
                user_id.replace("%", "%25"), user_id.replace("/", "%2F"), user_id.replace("|", "%7C"), user_id + "|"]
    return [v for v in dict.fromkeys(variants) if v != user_id]


@settings(deadline=None, derandomize=True, database=None, max_examples=25,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(user_id=_user_id)
def test_lookalike_user_ids_are_different_users(api: Api, user_id: str):
    """Each run uses a fresh suffix, so ids never collide with an earlier run's users."""
    suffix = uuid.uuid4().hex[:8]
    owner = User(f"{user_id}{suffix}")
    owned = _token(api, owner)["communicationUserId"]
    for lookalike in _lookalikes(user_id):
        other = User(f"{lookalike}{suffix}")
        assert _token(api, other)["communicationUserId"] != owned, f"{other.user_id!r} got the identity of {owner.user_id!r}"
    assert api.call("GET", "/api/identity", owner).json()["communicationUserId"] == owned


def test_provider_prefix_keeps_same_user_id_apart(api: Api, issuer: Issuer):
    """github|x, aad|x, the OIDC issuer's user x, and a principal whose provider and id spell
    out the issuer's user id, are four different users."""
    user_id = f"same-{uuid.uuid4().hex[:8]}"
    ids = {_token(api, User(user_id, provider=p))["communicationUserId"] for p in ("github", "aad")}
    ids.add(_token(api, headers={"authorization": f"Bearer {issuer.mint(user_id)}"})["communicationUserId"])
    scheme, rest = issuer.url.split(":", 1)
    spelled = basic_principal({"identityProvider": scheme, "userId": f"{rest}|{user_id}", "userRoles": ["authenticated"]})
    ids.add(_token(api, headers={"x-ms-client-principal": spelled})["communicationUserId"])
    assert len(ids) == 4


@pytest.fixture(scope="module")
def bearer_api(start_host) -> Api:
    """The app as configured when it is not behind Static Web Apps: bearer tokens only, and the
    principal header (which anyone could then send) ignored."""
    return start_host({"TRUST_CLIENT_PRINCIPAL": "false"}, "bearer-only")


def test_bearer_user_cannot_become_someone_else(bearer_api: Api, emulator: Emulator, issuer: Issuer):
    victim_sub, attacker_sub = f"victim-{uuid.uuid4().hex[:8]}", f"attacker-{uuid.uuid4().hex[:8]}"
    victim = {"authorization": f"Bearer {issuer.mint(victim_sub)}"}
    victim_issued = _token(bearer_api, headers=victim)

    # The attacker's own valid token, with claims that name the victim everywhere but in sub.
    attacker_token = issuer.mint(attacker_sub, claims={"oid": victim_sub, "preferred_username": victim_sub,
                                                       "upn": victim_sub, "name": victim_sub}, roles=["user"])
    attacker = {"authorization": f"Bearer {attacker_token}",
                "x-ms-client-principal": principal_header(victim_sub, roles=("authenticated", "admin")),
                "x-ms-client-principal-id": victim_sub}
    own = _token(bearer_api, headers=attacker)
    assert own["communicationUserId"] != victim_issued["communicationUserId"]
    seen = bearer_api.call("GET", "/api/identity", headers=attacker).json()
    assert seen["appUserId"] == f"{issuer.url}|{attacker_sub}"

    marked = bearer_api.call("POST", "/api/manage/deleted-users", headers=attacker, json={"appUserIds": [f"{issuer.url}|{victim_sub}"]})
    assert marked.status_code == 403, "a forged principal's admin role must not count where principals are not trusted"
    assert bearer_api.call("POST", "/api/token/revoke", headers=attacker).status_code == 204
    assert bearer_api.call("DELETE", "/api/identity", headers=attacker).status_code == 204

    assert victim_issued["communicationUserId"] in emulator.identities()
    assert emulator.verify(victim_issued["token"])["valid"]
    assert bearer_api.call("GET", "/api/identity", headers=victim).json()["communicationUserId"] == victim_issued["communicationUserId"]


def test_victims_token_for_another_audience_is_useless(bearer_api: Api, issuer: Issuer):
    """A token the victim got for some other app (leaked, say) does not work here."""
    leaked = issuer.mint(f"victim-{uuid.uuid4().hex[:8]}", aud="api://another-app-of-the-same-tenant")
    response = bearer_api.call("POST", "/api/token", headers={"authorization": f"Bearer {leaked}"})
    assert response.status_code == 401 and error_body(response)["code"] == "InvalidBearerToken"
