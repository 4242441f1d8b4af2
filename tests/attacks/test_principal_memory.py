"""The instance remembers each principal header it has read, by its exact value, for ten minutes
(at most 4,096 of them). Nothing it remembers may change who a caller is or what they may do: the
answer for a header is the answer a fresh reading of the same header would give, the access
policy, the admin check, the role grants and the tombstones are applied to every request as if
nothing were remembered, headers that differ in any way are read apart, and a field the fast path
lets through without its per-character check is one the full check would let through too.

Also here: the guest budgets' order (the client's own budget, then the total), from the side of
the guest the total refused."""

from __future__ import annotations

import base64
import http.client
import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests

from tests.attacks.conftest import remove_tombstone
from tests.conftest import CREATES, Api, Emulator, User, expect_error, new_user, principal_header, record_secrets

PRINCIPAL = "x-ms-client-principal"
IDP = "x-ms-client-principal-idp"
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
#: More distinct headers than the memory holds, so every earlier one has been pushed out.
PAST_THE_BOUND = 4096 + 256


def _b64(document: dict) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def _identity(api: Api, headers: dict[str, str]) -> requests.Response:
    return api.call("GET", "/api/identity", headers=headers)


def _read_only_as(api: Api, headers: dict[str, str]) -> requests.Response:
    """A request that reads the caller and checks the access policy, then stops at its body (a
    body not declared JSON is 400 UnsupportedContentType): no identity, no token, no table row."""
    return api.call("POST", "/api/token", headers={**headers, "Content-Type": "text/plain"}, data="x")


def _cleanup(api: Api, *users: User) -> None:
    for user in users:
        api.call("DELETE", "/api/identity", user)


# -- the same person, another header ---------------------------------------------------------


def test_an_admin_demoted_by_the_platform_is_refused_though_their_admin_header_is_remembered(api: Api):
    """Static Web Apps sends a new header when someone's roles change. The admin check reads the
    roles of the header this request carries, never those of the same person's earlier one."""
    person = f"user-{uuid.uuid4().hex[:12]}"
    admin = User(person, roles=("anonymous", "authenticated", "admin"))
    demoted = User(person, roles=("anonymous", "authenticated"))
    for _ in range(2):  # the second is answered from the memory
        allowed = api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": []})
        expect_error(allowed, 400, "InvalidField")  # past the admin check; nothing is marked
    for _ in range(2):
        expect_error(api.call("POST", "/api/manage/deleted-users", demoted, json={"appUserIds": []}), 403, "NotAdmin")
    expect_error(api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": []}), 400, "InvalidField")


def test_a_member_who_becomes_a_guest_gets_only_the_guest_grant_though_their_member_header_is_remembered(api: Api):
    """The ``guest`` role narrows what a signed-in caller may ask for (voip.join, at most 60
    minutes): a person whose earlier header had no such role is held to it as soon as the
    platform says so, and let go again when it no longer does."""
    person = f"user-{uuid.uuid4().hex[:12]}"
    member = User(person, roles=("anonymous", "authenticated"))
    guest = User(person, roles=("anonymous", "authenticated", "guest"))
    try:
        long = api.token(member, body={"expiresInMinutes": 1440})
        assert long.status_code == 200, long.text
        for _ in range(2):
            expect_error(api.token(guest, body={"expiresInMinutes": 1440}), 403, "LifetimeNotAllowed")
            expect_error(api.token(guest, body={"scopes": ["chat"]}), 403, "ScopeNotAllowed")
        again = api.token(member, body={"expiresInMinutes": 1440})
        assert again.status_code == 200, again.text
    finally:
        _cleanup(api, member)


@pytest.fixture(scope="module")
def closed_api(start_host) -> Api:
    """The deployment's closed policy (a role is required), with guests on and small budgets:
    a client's own budget of 1 a minute, a total of 6 a minute (one back every 10 s)."""
    return start_host({"ACCESS_ALLOWED_PROVIDERS": "github", "ACCESS_REQUIRED_ROLES": "member",
                       "GUEST_ACCESS_ENABLED": "true", "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE": "1",
                       "GUEST_REQUESTS_PER_MINUTE": "6"}, "principal-memory")


def test_a_member_whose_role_is_taken_away_is_refused_at_once_though_their_member_header_is_remembered(closed_api: Api):
    person = f"user-{uuid.uuid4().hex[:12]}"
    member = User(person, roles=("anonymous", "authenticated", "member"))
    removed = User(person, roles=("anonymous", "authenticated"))
    other_provider = User(person, provider="twitter", roles=("anonymous", "authenticated", "member"))
    try:
        for _ in range(2):
            issued = closed_api.token(member)
            assert issued.status_code == 200, issued.text
        for _ in range(2):
            expect_error(closed_api.token(removed), 403, "RoleRequired")
            expect_error(closed_api.token(removed, fresh=True), 403, "RoleRequired")
            expect_error(closed_api.token(other_provider), 403, "ProviderNotAllowed")
        mine = closed_api.call("GET", "/api/identity", member).json()
        assert mine == {"appUserId": member.app_user_id, "communicationUserId": issued.json()["communicationUserId"]}
    finally:
        _cleanup(closed_api, member)


def test_a_user_marked_deleted_gets_nothing_with_the_very_header_that_was_remembered(api: Api, emulator: Emulator, table):
    """Not a new token, and not the token issued moments ago either: the header is remembered,
    the identity and a recent token were too, and the tombstone outweighs them all."""
    user = new_user()
    first = api.token(user)
    assert first.status_code == 200, first.text
    assert api.token(user).json()["token"] == first.json()["token"]  # handed out again from memory
    admin = new_user(roles=("anonymous", "authenticated", "admin"))
    marked = api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": [user.app_user_id]})
    assert marked.status_code == 202 and marked.json() == {"marked": 1, "matched": 1}, marked.text
    try:
        before = emulator.calls("issueAccessToken", *CREATES)
        for _ in range(2):
            expect_error(api.token(user), 403, "AccountDeleted")
            expect_error(api.token(user, fresh=True), 403, "AccountDeleted")
        assert emulator.calls("issueAccessToken", *CREATES) == before
    finally:
        api.call("DELETE", "/api/identity", user)
        remove_tombstone(table, user.app_user_id)


# -- other headers, another person -----------------------------------------------------------


def _with_both_alphabets(user_id: str) -> str:
    """A principal whose standard base64 has '+', '/' and '=' in it, so its URL-safe and
    unpadded spellings are other strings."""
    for details in range(1000):
        filler = "~?>"[details % 3] * (details // 3 % 7 + 1) + "?~" * (details // 21)
        raw = _b64({"identityProvider": "github", "userId": user_id, "userDetails": f"{filler}@example.test",
                    "userRoles": ["anonymous", "authenticated"]})
        if "+" in raw and "/" in raw and raw.endswith("="):
            return raw
    raise AssertionError("no spelling with both alphabets")


def test_every_spelling_of_one_users_header_names_that_user_and_never_the_one_remembered_before(api: Api):
    """Two users whose headers differ only past their first 60 characters (the user id comes
    late in the JSON). After the first is remembered, each spelling the reader accepts of the
    second (URL-safe alphabet, no padding, extra padding, a trailing no-break space) names the second
    user; an upper-cased one, two headers in one request, or a header of non-ASCII text names
    nobody (401)."""
    first, second = (f"user-{uuid.uuid4().hex[:12]}" for _ in range(2))
    first_raw, second_raw = _with_both_alphabets(first), _with_both_alphabets(second)
    assert first_raw[:60] == second_raw[:60]
    users = [User(first), User(second)]
    try:
        ids = {}
        for raw, user_id in ((first_raw, first), (second_raw, second)):
            issued = api.call("POST", "/api/token", headers={PRINCIPAL: raw}, json={})
            assert issued.status_code == 200, issued.text
            ids[user_id] = issued.json()["communicationUserId"]
        assert ids[first] != ids[second]
        url_safe = second_raw.replace("+", "-").replace("/", "_")
        for spelling in (url_safe, url_safe.rstrip("="), second_raw.rstrip("="), second_raw + "=="):
            for _ in range(2):
                mine = _identity(api, {PRINCIPAL: spelling})
                assert mine.status_code == 200, mine.text
                assert mine.json() == {"appUserId": f"github|{second}", "communicationUserId": ids[second]}
        for bad in (second_raw.upper(), second_raw[:-8] + "\u00e9" * 8):
            expect_error(_identity(api, {PRINCIPAL: bad.encode("utf-8")}), 401, "InvalidPrincipal")
        # A no-break space (U+00A0 in UTF-8) after the value: Python's strip() drops it, as the
        # spaces around it; the caller is still exactly the second user, not the first.
        mine = _identity(api, {PRINCIPAL: second_raw.encode() + b"\xc2\xa0"})
        assert mine.status_code in (200, 401), mine.text
        if mine.status_code == 200:
            assert mine.json()["appUserId"] == f"github|{second}"
        expect_error(_twice(api, first_raw, second_raw), 401, "InvalidPrincipal")
    finally:
        _cleanup(api, *users)


def _twice(api: Api, first_raw: str, second_raw: str) -> requests.Response:
    """GET /api/identity with two principal headers (the platform would never send two; the host
    joins repeated headers with ", ")."""
    url = urlsplit(api.base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.putrequest("GET", "/api/identity")
        connection.putheader(PRINCIPAL, first_raw)
        connection.putheader(PRINCIPAL, second_raw)
        connection.endheaders()
        reply = connection.getresponse()
        response = requests.Response()
        response.status_code = reply.status
        response.headers = requests.structures.CaseInsensitiveDict(reply.getheaders())
        response._content = reply.read()
        record_secrets({PRINCIPAL: first_raw}, response)
        record_secrets({PRINCIPAL: second_raw})
        return response
    finally:
        connection.close()


def test_one_app_service_principal_read_with_another_provider_header_is_another_user(api: Api):
    """An App Service principal without ``auth_typ`` takes its provider from the
    x-ms-client-principal-idp header: the same principal with another provider header is another
    app user, even right after the first reading was remembered."""
    oid = str(uuid.uuid4())
    raw = _b64({"auth_typ": "", "claims": [{"typ": OBJECT_ID_CLAIM, "val": oid}]})
    try:
        issued = api.call("POST", "/api/token", headers={PRINCIPAL: raw, IDP: "github"}, json={})
        assert issued.status_code == 200, issued.text
        mine = _identity(api, {PRINCIPAL: raw, IDP: "github"})
        assert mine.json() == {"appUserId": f"github|{oid}", "communicationUserId": issued.json()["communicationUserId"]}
        for _ in range(2):
            expect_error(_identity(api, {PRINCIPAL: raw, IDP: "aad"}), 404, "IdentityNotFound")
        expect_error(_identity(api, {PRINCIPAL: raw}), 401, "InvalidPrincipal")  # no provider at all
    finally:
        api.call("DELETE", "/api/identity", headers={PRINCIPAL: raw, IDP: "github"})


# -- the fast path --------------------------------------------------------------------------

#: Characters no user id or role may carry: ASCII control characters (which the fast path sends
#: to the full check because they are not printable), and the non-ASCII control, format, bidi,
#: line-separator and lone-surrogate characters only the full check sees.
UNCLEAN = {
    "delete": "\x7f", "escape": "\x1b", "tab": "\t", "newline": "\n", "nul": "\x00", "c1-control": "\x85",
    "left-to-right-mark": "\u200e", "right-to-left-override": "\u202e", "zero-width-space": "\u200b",
    "line-separator": "\u2028", "paragraph-separator": "\u2029", "lone-surrogate": "\ud800", "bom": "\ufeff",
}


def _principal_with(field: str, text: str) -> str:
    """A Static Web Apps principal whose user id or role carries ``text`` (JSON-escaped, so the
    header itself is plain base64)."""
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    roles = ["anonymous", "authenticated"]
    if field == "userId":
        user_id = f"{user_id}{text}x"
    else:
        roles.append(f"member{text}")
    document = json.dumps({"identityProvider": "github", "userId": user_id, "userRoles": roles})
    return base64.b64encode(document.encode()).decode()


@pytest.mark.parametrize("field", ["userId", "role"])
@pytest.mark.parametrize("text", UNCLEAN.values(), ids=UNCLEAN.keys())
def test_a_principal_whose_user_id_or_role_carries_a_control_or_format_character_is_refused_every_time(
        api: Api, field: str, text: str):
    raw = _principal_with(field, text)
    for _ in range(2):  # a refused header is never remembered as accepted
        expect_error(_identity(api, {PRINCIPAL: raw}), 401, "InvalidPrincipal")


def test_an_app_service_user_id_claim_with_a_control_character_is_refused_every_time(api: Api):
    for text in ("\x7f", "\x1f", "\u202e"):
        raw = _b64({"auth_typ": "github", "claims": [{"typ": "sub", "val": f"user-{uuid.uuid4().hex[:8]}{text}x"}]})
        for _ in range(2):
            expect_error(_identity(api, {PRINCIPAL: raw}), 401, "InvalidPrincipal")


# -- a flood of headers ---------------------------------------------------------------------


def test_a_flood_of_other_principals_past_the_memorys_bound_does_not_change_who_a_caller_is(api: Api):
    """More distinct signed-in headers than the memory holds push every earlier one out; those
    read again are read afresh, and name the same users as before, with their own identities."""
    victim, pushed_out = new_user(), new_user()
    try:
        ids = {}
        for user in (victim, pushed_out):
            issued = api.token(user)
            assert issued.status_code == 200, issued.text
            ids[user.app_user_id] = issued.json()["communicationUserId"]
        flood = [{PRINCIPAL: principal_header(f"flood-{uuid.uuid4().hex[:12]}")} for _ in range(PAST_THE_BOUND)]
        session = requests.Session()

        def ask(headers: dict[str, str]) -> int:
            return session.post(f"{api.base}/api/token", headers={**headers, "Content-Type": "text/plain"},
                                data="x", timeout=60).status_code

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, flood))
        assert set(answers) == {400}, sorted(set(answers))
        for user in (victim, pushed_out):
            mine = api.call("GET", "/api/identity", user)
            assert mine.json() == {"appUserId": user.app_user_id, "communicationUserId": ids[user.app_user_id]}
        for headers in random.sample(flood, 5):  # flood users still have no identity of anyone's
            expect_error(_identity(api, headers), 404, "IdentityNotFound")
    finally:
        _cleanup(api, victim, pushed_out)


# -- guest budgets ---------------------------------------------------------------------------


def _guest(api: Api, address: str) -> requests.Response:
    return api.call("POST", "/api/guest/token", headers={"X-Forwarded-For": f"{address}:{random.randrange(1024, 65535)}"},
                    json={"displayName": "Ada Lovelace"})


def test_a_guest_the_total_budget_refused_is_served_once_the_total_has_room_again(
        closed_api: Api, emulator: Emulator, stack: dict, table):
    """Six addresses take the total of 6 with one request each; a seventh guest is refused (the
    total is spent). The total gets one back every 10 s, this guest's own budget one a minute. 12 s
    later the total has room and the guest, who has been served nothing, must be served: their one
    refused request must not have spent their own budget (as a request refused by its own budget
    no longer spends the total). Any wait from 10 s to 60 s tells the two apart."""
    octets = random.sample(range(1, 255), 7)
    others, guest = [f"198.18.{octets[0]}.{n}" for n in octets[1:]], f"203.0.113.{octets[0]}"
    made: list[str] = []
    before = emulator.identities()
    try:
        for address in others:
            served = _guest(closed_api, address)
            assert served.status_code == 200, served.text
            made.append(served.json()["communicationUserId"])
        expect_error(_guest(closed_api, guest), 429, "GuestBudgetExceeded")
        time.sleep(12)
        again = _guest(closed_api, guest)
        if again.status_code == 200:
            made.append(again.json()["communicationUserId"])
        assert again.status_code == 200, (
            f"a guest refused by the total budget lost their own budget too, and is still refused now the total has room: "
            f"{again.status_code} {again.text} Retry-After={again.headers.get('Retry-After')}")
        assert len(emulator.identities() - before) == 7
    finally:
        from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

        client = CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"])
        for identity in made:
            client.delete_user(CommunicationUserIdentifier(identity))
            table.delete_entity("guests", identity)
