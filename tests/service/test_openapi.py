"""openapi.yaml describes what the running service answers: every route the function host serves
is documented and nothing else; every documented status of every operation is produced here by
the running endpoints (and nothing undocumented is); each answer's body validates against its
schema, and each documented response header is present and valid (Cache-Control on every
answer, Retry-After on 429 and 503, WWW-Authenticate on 401)."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import jsonschema
import pytest
import requests
import yaml

from tests.conftest import Api, Emulator, FunctionHost, new_user, run_log_dir

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "openapi.yaml").read_text())
ADMIN = ("anonymous", "authenticated", "admin")
BIG = b'{"scopes": ["chat"], "pad": "' + b"x" * 17_000 + b'"}'


def _resolve(node):
    """Inline local $refs so jsonschema can check a response body on its own."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = SPEC
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(target)
        return {k: _resolve(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v) for v in node]
    return node


#: (path, method) -> statuses the running service was seen to answer with, filled by the tests.
SEEN: dict[tuple[str, str], set[int]] = defaultdict(set)


def check(response: requests.Response, path: str, method: str) -> None:
    """The answer is documented for this operation, its body matches the schema and every header
    the description names for it is present and valid."""
    operation = SPEC["paths"][path][method]
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {path} answered undocumented {status}: {response.text[:200]}"
    SEEN[(path, method)].add(response.status_code)
    described = _resolve(documented[status])
    for name, header in (described.get("headers") or {}).items():
        value = response.headers.get(name)
        if header.get("required"):
            assert value is not None, f"{method.upper()} {path} {status} lacks the documented header {name}"
        if value is not None:
            schema = header["schema"]
            jsonschema.validate(int(value) if schema.get("type") == "integer" else value, schema)
    content = described.get("content")
    if content is None:
        assert not response.content, f"{method.upper()} {path} {status} has a body the description does not give"
        return
    assert response.headers["Content-Type"].startswith("application/json")
    jsonschema.validate(response.json(), content["application/json"]["schema"])


def _served_routes(log: str) -> set[tuple[str, str]]:
    """The HTTP functions a function host says it serves (its start-up listing)."""
    routes = set()
    for method, path in re.findall(r"^\s+\w+: \[([A-Z,]+)\] https?://[^/]+/api(/\S*)$", log, re.M):
        routes.update((path, m.lower()) for m in method.split(","))
    return routes


def test_every_served_route_is_documented_and_nothing_else(stack: dict):
    log = (run_log_dir(stack) / "functions.log").read_text(errors="replace")
    served = _served_routes(log)
    assert served, "the function host listed no routes"
    documented = {(path, method) for path, ops in SPEC["paths"].items() for method in ops}
    assert served == documented


def test_every_response_documents_no_store_and_errors_document_their_headers():
    """The description itself names the headers: Cache-Control on every response, Retry-After
    on every 429 and 503, WWW-Authenticate on every 401."""
    for path, operations in SPEC["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                headers = _resolve(response).get("headers") or {}
                assert "Cache-Control" in headers, f"{method} {path} {status}"
                if status in ("429", "503"):
                    assert headers.get("Retry-After", {}).get("required"), f"{method} {path} {status}"
                if status == "401":
                    assert headers.get("WWW-Authenticate", {}).get("required"), f"{method} {path} {status}"


# -- the running endpoints, status by status -------------------------------------------------------

def _teams_body(stack: dict) -> dict:
    oid, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    base = stack["identityEndpoint"].rsplit("/msi/", 1)[0]
    token = requests.post(f"{base}/_local/entra-user-token", json={"oid": oid, "appId": app_id}, timeout=10).json()["token"]
    return {"teamsToken": token, "appId": app_id, "userId": oid}


def test_success_and_caller_errors_match_the_description(api: Api, stack: dict):
    user, admin = new_user(), new_user(ADMIN)
    json_headers = {"Content-Type": "application/json"}
    cases = [
        ("post", "/token", user, {"json": {"scopes": ["chat"]}}),             # 200 (creates)
        ("post", "/token", user, {"json": {"scopes": ["nope"]}}),             # 400
        ("post", "/token", None, {}),                                          # 401
        ("post", "/token", user, {"data": BIG, "headers": json_headers}),     # 413
        ("get", "/identity", user, {}),                                        # 200
        ("get", "/identity", new_user(), {}),                                  # 404
        ("get", "/identity", None, {}),                                        # 401
        ("post", "/token/revoke", user, {}),                                   # 204
        ("post", "/token/revoke", user, {"json": {"x": 1}}),                   # 400
        ("post", "/token/revoke", None, {}),                                   # 401
        ("post", "/token/revoke", user, {"data": BIG, "headers": json_headers}),  # 413
        ("post", "/teams/token", user, {"json": _teams_body(stack)}),          # 200
        ("post", "/teams/token", user, {"json": {"teamsToken": "x"}}),         # 400
        ("post", "/teams/token", None, {"json": _teams_body(stack)}),          # 401
        ("post", "/teams/token", user, {"data": BIG, "headers": json_headers}),  # 413
        ("post", "/manage/deleted-users", admin, {"json": {"appUserIds": [new_user().app_user_id]}}),  # 202
        ("post", "/manage/deleted-users", admin, {"json": {"appUserIds": []}}),  # 400
        ("post", "/manage/deleted-users", None, {"json": {"appUserIds": ["a"]}}),  # 401
        ("post", "/manage/deleted-users", user, {"json": {"appUserIds": ["a"]}}),  # 403
        ("post", "/manage/deleted-users", admin, {"data": BIG, "headers": json_headers}),  # 413
        ("delete", "/identity", user, {}),                                     # 204
        ("delete", "/identity", None, {}),                                     # 401
        ("get", "/health", None, {}),                                          # 200
    ]
    for method, path, caller, kwargs in cases:
        check(api.call(method.upper(), f"/api{path}", caller, **kwargs), path, method)

    doomed = new_user()
    assert api.token(doomed).status_code == 200
    api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": [doomed.app_user_id]})
    check(api.token(doomed, fresh=True), "/token", "post")  # 403 AccountDeleted


@pytest.fixture(scope="module")
def throttled_api(stack: dict) -> Iterator[Api]:
    """A host allowing one request per user per minute on every limited route."""
    host = FunctionHost(stack, {"TOKEN_REQUESTS_PER_MINUTE": "1", "IDENTITY_CHANGES_PER_MINUTE": "1",
                                "MANAGE_REQUESTS_PER_MINUTE": "1"}, "openapi-throttled")
    yield Api(host.base)
    host.stop()


def test_throttled_answers_match_the_description(throttled_api: Api, stack: dict):
    user = new_user()
    check(throttled_api.token(user), "/token", "post")
    check(throttled_api.token(user), "/token", "post")  # 429
    check(throttled_api.call("POST", "/api/teams/token", user, json=_teams_body(stack)), "/teams/token", "post")  # 429
    for method, path in (("post", "/token/revoke"), ("delete", "/identity"), ("post", "/token/revoke")):
        check(throttled_api.call(method.upper(), f"/api{path}", user), path, method)  # 204, then 429
    admin = new_user(ADMIN)
    for _ in range(2):
        check(throttled_api.call("POST", "/api/manage/deleted-users", admin, json={"appUserIds": [new_user().app_user_id]}),
              "/manage/deleted-users", "post")  # 202, then 429


@pytest.fixture(scope="module")
def closed_api(stack: dict) -> Iterator[Api]:
    """A host with the deployment's closed defaults: no access policy opened, no Teams exchange."""
    host = FunctionHost(stack, {"ACCESS_ALLOWED_PROVIDERS": "", "ACCESS_REQUIRED_ROLES": "", "TEAMS_EXCHANGE_ENABLED": "",
                                "TEAMS_ALLOWED_APP_IDS": "", "TEAMS_ALLOWED_TENANT_IDS": "", "GUEST_ACCESS_ENABLED": ""},
                        "openapi-closed")
    yield Api(host.base)
    host.stop()


def test_refusals_of_the_access_policy_match_the_description(closed_api: Api, stack: dict):
    user = new_user()
    for path, ops in SPEC["paths"].items():
        for method in ops:
            body = {"/teams/token": _teams_body(stack), "/manage/deleted-users": {"appUserIds": ["github|x"]}}.get(path)
            check(closed_api.call(method.upper(), f"/api{path}", user, json=body), path, method)


@pytest.fixture(scope="module")
def misconfigured_api(stack: dict) -> Iterator[Api]:
    """A host with an invalid setting: every endpoint answers 503 ServiceMisconfigured."""
    host = FunctionHost(stack, {"TOKEN_DEFAULT_MINUTES": "5"}, "openapi-misconfigured")
    yield Api(host.base)
    host.stop()


def test_unavailable_answers_match_the_description(api: Api, misconfigured_api: Api, emulator: Emulator, stack: dict):
    user, admin = new_user(), new_user(ADMIN)
    for path, ops in SPEC["paths"].items():
        for method in ops:
            caller = None if path == "/health" else (admin if path.startswith("/manage") else user)
            body = {"/teams/token": _teams_body(stack), "/manage/deleted-users": {"appUserIds": ["github|x"]}}.get(path)
            check(misconfigured_api.call(method.upper(), f"/api{path}", caller, json=body), path, method)
    # And a real dependency failure on the healthy host: ACS refusing every create.
    emulator.fault(503, count=50, operations=["createIdentity"], retry_after=1)
    try:
        check(api.token(new_user()), "/token", "post")
    finally:
        emulator.clear_faults()


CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Origin": "https://attacker.example"}


@pytest.fixture(scope="module")
def guest_api(stack: dict) -> Iterator[Api]:
    """Guests on, one guest token per client address a minute: the second is 429."""
    host = FunctionHost(stack, {"GUEST_ACCESS_ENABLED": "true", "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE": "1",
                                "GUEST_REQUESTS_PER_MINUTE": "1000"}, "openapi-guests")
    yield Api(host.base)
    host.stop()


def test_guest_and_cross_site_answers_match_the_description(api: Api, guest_api: Api, closed_api: Api, stack: dict,
                                                            table):
    """The guest route's answers and the refusal of another site's page on every route that
    changes state: produced here too, so this module alone answers every documented status
    (tests/guest and tests/trust check the same answers in their own settings)."""
    client = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}:4711"}
    user, admin = new_user(), new_user(ADMIN)
    guest = guest_api.call("POST", "/api/guest/token", headers=client, json={"displayName": "Ada"})
    made = [guest.json()["communicationUserId"]] if guest.status_code == 200 else []
    try:
        cases = [
            (guest, "/guest/token"),                                                                           # 200
            (guest_api.call("POST", "/api/guest/token", headers=client, json={"displayName": "Ada"}), "/guest/token"),  # 429
            (guest_api.call("POST", "/api/guest/token", headers=client, json={"displayName": "<b>Ada</b>"}),
             "/guest/token"),                                                                                  # 400
            (guest_api.call("POST", "/api/guest/token", headers={**client, "Content-Type": "application/json"},
                            data=b'{"displayName":"' + b"a" * 17_000 + b'"}'), "/guest/token"),                # 413
            (closed_api.call("POST", "/api/guest/token", headers=client, json={"displayName": "Ada"}),
             "/guest/token"),                                                                                  # 404
            (guest_api.call("POST", "/api/guest/token", headers={**client, **CROSS_SITE}, json={"displayName": "Ada"}),
             "/guest/token"),                                                                                  # 403
        ]
        statuses = [response.status_code for response, _ in cases]
        assert statuses == [200, 429, 400, 413, 404, 403], statuses
        for response, path in cases:
            check(response, path, "post")
        for method, path, caller, body in (("POST", "/token", user, None), ("POST", "/token/revoke", user, None),
                                           ("DELETE", "/identity", user, None), ("POST", "/teams/token", user, _teams_body(stack)),
                                           ("POST", "/manage/deleted-users", admin, {"appUserIds": ["github|never-marked"]})):
            response = api.call(method, f"/api{path}", caller, headers=CROSS_SITE, json=body)
            assert response.status_code == 403 and response.json()["error"]["code"] == "CrossSiteRequest", response.text
            check(response, path, method.lower())
    finally:
        from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

        acs = CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"])
        for identity in made:  # no guest of this module is left for a later sweep to count
            acs.delete_user(CommunicationUserIdentifier(identity))
            table.delete_entity("guests", identity)


#: The tests of this module that produce answers; together they produce every documented status.
PRODUCERS = ("test_success_and_caller_errors_match_the_description", "test_throttled_answers_match_the_description",
             "test_refusals_of_the_access_policy_match_the_description", "test_unavailable_answers_match_the_description",
             "test_guest_and_cross_site_answers_match_the_description")


@pytest.mark.run_last
def test_every_documented_status_was_answered_by_the_running_service(request: pytest.FixtureRequest):
    """Runs after the tests above (and every other test): each status the description lists for
    an operation was seen from the running endpoints, so none is documented on faith. This
    module provokes every one itself, so a run of this module alone (or of any set that holds
    it) checks them all; other modules' answers through ``check`` are counted too."""
    here = Path(__file__).resolve()
    selected = {item.name for item in request.session.items if Path(str(item.fspath)).resolve() == here}
    if not_run := [name for name in PRODUCERS if name not in selected]:
        pytest.skip(f"only part of this module was selected (not {', '.join(not_run)}): the statuses they produce are not judged")
    missing = {f"{method.upper()} {path} {status}"
               for path, ops in SPEC["paths"].items() for method, op in ops.items()
               for status in op["responses"] if int(status) not in SEEN[(path, method)]}
    assert not missing, f"documented but never answered by the running service: {sorted(missing)}"
