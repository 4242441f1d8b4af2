"""When ACS, Table Storage or the managed identity endpoint fails, callers get a retried success
or a 503 with Retry-After — never a 500, never a hang — no ACS identity is left without a
mapping, and the service recovers by itself once the dependency is back.

ACS faults come from the emulator's fault injection and latency setting. Table Storage and the
identity endpoint are taken away for real: a second function host reaches them through a TCP
proxy (tests/fault_proxy.py) whose listener the test closes, so the host sees refused
and reset connections exactly as when the process on the other end dies, while the shared stack
keeps running for every other test.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import CREATES, Api, Emulator, expect_error, new_user
from tests.reliability.conftest import orphans
from tests.fault_proxy import FaultProxy
from tests.reliability.support import FIGURES, SECRETS, error_body

pytestmark = pytest.mark.usefixtures("no_new_orphans")


def _ok(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    SECRETS.add(body.get("token"))
    return body


def _unavailable(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 503, f"expected 503, got {response.status_code}: {response.text[:200]}"
    return error_body(response)


def _faulted(emulator: Emulator) -> int:
    return sum(emulator.stats().get("faulted", {}).values())


# -- ACS: errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_acs_errors_on_issue_are_retried_into_a_success(api: Api, quiet_emulator: Emulator, status: int):
    """Two failures in a row fit the retry budget: the refresh succeeds, after three issue calls."""
    user = new_user()
    first = _ok(api.token(user))
    before, issues = _faulted(quiet_emulator), quiet_emulator.calls("issueAccessToken")
    quiet_emulator.fault(status, count=2, operations=["issueAccessToken"], retry_after=1)
    again = _ok(api.token(user, fresh=True))
    assert again["communicationUserId"] == first["communicationUserId"]
    assert _faulted(quiet_emulator) - before == 2, "the faults were not all met (and retried)"
    assert quiet_emulator.calls("issueAccessToken") - issues == 3
    assert quiet_emulator.verify(again["token"])["valid"]
    FIGURES.survived(f"ACS {status} x2 on issue: retried")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_failed_create_is_not_retried_blindly_and_the_user_retries(api: Api, quiet_emulator: Emulator, status: int):
    """ACS has no idempotent create, so a failed one is not repeated by the service (a repeat
    could make a second identity): one create call, 503 with Retry-After, no mapping; the
    user's own retry then gets the identity."""
    user = new_user()
    creates = quiet_emulator.calls(*CREATES)
    quiet_emulator.fault(status, count=1, operations=["createIdentity"], retry_after=1)
    _unavailable(api.token(user))
    assert quiet_emulator.calls(*CREATES) - creates == 1
    expect_error(api.call("GET", "/api/identity", user), 404, "IdentityNotFound")
    issued = _ok(api.token(user))
    assert api.call("GET", "/api/identity", user).json()["communicationUserId"] == issued["communicationUserId"]
    FIGURES.survived(f"ACS {status} on create: 503, not repeated, user retry succeeds")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_persistent_acs_errors_give_503_with_retry_after_then_recover(api: Api, quiet_emulator: Emulator, status: int):
    user = new_user()
    quiet_emulator.fault(status, count=50, operations=["createIdentity"], retry_after=1)
    _unavailable(api.token(user))
    assert api.call("GET", "/api/identity", user).status_code == 404, "a failed first call must not leave a mapping"

    quiet_emulator.clear_faults()
    first = _ok(api.token(user))
    quiet_emulator.fault(status, count=50, operations=["issueAccessToken"], retry_after=1)
    _unavailable(api.token(user, fresh=True))
    quiet_emulator.clear_faults()
    assert _ok(api.token(user, fresh=True))["communicationUserId"] == first["communicationUserId"]
    FIGURES.survived(f"ACS {status} persistent: 503 + Retry-After, recovered")


def test_acs_failing_revoke_and_delete_give_503_and_keep_the_identity(api: Api, quiet_emulator: Emulator):
    user = new_user()
    issued = _ok(api.token(user))
    quiet_emulator.fault(503, count=50, operations=["revokeAccessTokens", "deleteIdentity"], retry_after=1)
    _unavailable(api.call("POST", "/api/token/revoke", user))
    _unavailable(api.call("DELETE", "/api/identity", user))
    assert api.call("GET", "/api/identity", user).json()["communicationUserId"] == issued["communicationUserId"]
    quiet_emulator.clear_faults()
    assert api.call("DELETE", "/api/identity", user).status_code == 204
    assert issued["communicationUserId"] not in quiet_emulator.identities()
    FIGURES.survived("ACS 503 on revoke and delete: 503, identity kept, deleted after")


# -- ACS: slow -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def impatient_api(start_host: Callable[[dict[str, str], str], Api]) -> Api:
    """The app with a 2-second dependency budget (DEPENDENCY_TIMEOUT_SECONDS)."""
    return start_host({"DEPENDENCY_TIMEOUT_SECONDS": "2"}, "impatient")


def test_slow_acs_gives_503_not_a_hang(impatient_api: Api, quiet_emulator: Emulator):
    """ACS answering after the budget: the caller gets 503 with Retry-After well before its own
    timeout (the request below would fail with a timeout if the service hung)."""
    known = new_user()
    first = _ok(impatient_api.token(known))
    quiet_emulator.configure(latencyMs=4000)
    response = impatient_api.session.post(f"{impatient_api.base}/api/token", headers={**known.headers, "Cache-Control": "no-cache"},
                                          timeout=15)
    _unavailable(response)
    quiet_emulator.configure(latencyMs=None)
    assert _ok(impatient_api.token(known, fresh=True))["communicationUserId"] == first["communicationUserId"]
    FIGURES.survived("ACS slower than the budget on issue: 503, recovered")


def test_slow_acs_on_first_call_gives_503_and_no_orphan(impatient_api: Api, quiet_emulator: Emulator):
    """The first call's create is slower than the budget: 503 and no mapping. ACS has no
    idempotent create, so the service lets the slow create finish and deletes the identity it
    returns: once it has, ACS holds no identity the service did not map. The user's retry gets one."""
    user = new_user()
    before = quiet_emulator.identities()
    deletes_before = quiet_emulator.stats()["calls"].get("deleteIdentity", 0)
    quiet_emulator.configure(latencyMs=3000)
    response = impatient_api.session.post(f"{impatient_api.base}/api/token", headers=user.headers, timeout=15)
    _unavailable(response)
    quiet_emulator.configure(latencyMs=None)
    assert impatient_api.call("GET", "/api/identity", user).status_code == 404
    deadline = time.monotonic() + 15
    while quiet_emulator.identities() - before:
        assert time.monotonic() < deadline, "the identity created after the budget was not deleted"
        time.sleep(0.2)
    deadline = time.monotonic() + 15
    while quiet_emulator.stats()["calls"].get("deleteIdentity", 0) == deletes_before:  # ACS did create it
        assert time.monotonic() < deadline, "the slow create's identity was never deleted"
        time.sleep(0.2)
    assert not quiet_emulator.identities() - before
    issued = _ok(impatient_api.token(user))
    assert impatient_api.call("GET", "/api/identity", user).json()["communicationUserId"] == issued["communicationUserId"]
    FIGURES.survived("ACS slower than the budget on create: 503, late identity deleted")


# -- Table Storage -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tables_proxy(stack: dict) -> Iterator[FaultProxy]:
    parts = urlsplit(stack["tablesEndpoint"])
    proxy = FaultProxy(parts.hostname, parts.port).up()
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def tables_via_proxy(stack: dict, tables_proxy: FaultProxy, start_host: Callable[[dict[str, str], str], Api]) -> Api:
    parts = urlsplit(stack["tablesEndpoint"])
    return start_host({"TABLES_ENDPOINT": f"https://127.0.0.1:{tables_proxy.port}{parts.path}"}, "tables-via-proxy")


@pytest.fixture
def tables_back_up(tables_proxy: FaultProxy) -> Iterator[FaultProxy]:
    tables_proxy.up()
    yield tables_proxy
    tables_proxy.up()


def test_table_storage_down_gives_503_then_recovers(tables_via_proxy: Api, tables_back_up: FaultProxy, emulator: Emulator):
    """Azurite unreachable (connections refused): first calls, identity reads and health say 503;
    no identity is created that could not be mapped; all works again once it is back."""
    api, proxy = tables_via_proxy, tables_back_up
    warm = new_user()
    _ok(api.token(warm))
    newcomer = new_user()
    identities_before = emulator.identities()

    proxy.down()
    _unavailable(api.token(newcomer))
    _unavailable(api.call("GET", "/api/identity", newcomer))
    _unavailable(api.call("DELETE", "/api/identity", newcomer))
    health = api.call("GET", "/api/health")
    assert health.status_code == 503 and health.json()["status"] == "unhealthy" and int(health.headers["Retry-After"]) >= 1
    assert emulator.identities() == identities_before, "an ACS identity was made that could not be mapped"

    proxy.up()
    issued = _ok(api.token(newcomer))
    assert api.call("GET", "/api/identity", newcomer).json()["communicationUserId"] == issued["communicationUserId"]
    assert api.call("GET", "/api/health").status_code == 200
    _ok(api.token(warm, fresh=True))
    FIGURES.survived("Table Storage down: 503, recovered")


def test_table_storage_lost_between_create_and_mapping_leaves_no_orphan(
    tables_via_proxy: Api, tables_back_up: FaultProxy, quiet_emulator: Emulator, table: Any
):
    """Azurite goes away after the user's mapping was looked up but before the new identity's
    mapping is written (ACS is made slow so the test can cut in between): the service must
    delete the identity it just made, answer 503, and map a new one on the next call."""
    api, proxy = tables_via_proxy, tables_back_up
    _ok(api.token(new_user()))  # warm: credentials fetched, table exists, connections pooled
    user = new_user()
    before = orphans(quiet_emulator, table)
    quiet_emulator.configure(latencyMs=2500)
    creates, deletes = quiet_emulator.calls(*CREATES), quiet_emulator.calls("deleteIdentity")
    traffic = proxy.bytes_to_client
    result: dict[str, requests.Response] = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", api.token(user)))
    worker.start()
    while proxy.bytes_to_client == traffic and worker.is_alive():  # the lookup has begun…
        time.sleep(0.01)
    proxy.wait_quiet(0.5)  # …and finished; ACS is now creating the identity
    proxy.down()
    worker.join(60)
    quiet_emulator.configure(latencyMs=None)
    _unavailable(result["r"])
    assert quiet_emulator.calls(*CREATES) - creates == 1, "ACS never created the identity: the cut came too early"
    assert quiet_emulator.calls("deleteIdentity") - deletes == 1, "the identity whose mapping was lost was not deleted"
    assert orphans(quiet_emulator, table) == before, "the identity made before the mapping write failed is orphaned"

    proxy.up()
    issued = _ok(api.token(user))
    assert api.call("GET", "/api/identity", user).json()["communicationUserId"] == issued["communicationUserId"]
    FIGURES.survived("Table Storage lost mid-request: 503, identity discarded, recovered")


# -- the managed identity endpoint ---------------------------------------------------------------

@pytest.fixture(scope="module")
def identity_proxy(stack: dict) -> Iterator[FaultProxy]:
    parts = urlsplit(stack["identityEndpoint"])
    proxy = FaultProxy(parts.hostname, parts.port).up()
    proxy.down()  # the port is reserved; the endpoint starts out unreachable
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def identity_via_proxy(stack: dict, identity_proxy: FaultProxy, start_host: Callable[[dict[str, str], str], Api]) -> Api:
    parts = urlsplit(stack["identityEndpoint"])
    return start_host({"IDENTITY_ENDPOINT": f"http://127.0.0.1:{identity_proxy.port}{parts.path}"}, "identity-via-proxy")


def test_identity_endpoint_down_gives_503_then_recovers(identity_via_proxy: Api, identity_proxy: FaultProxy, emulator: Emulator):
    """No managed identity token can be had (connection refused): 503, not 500, for token and
    identity requests and on health; once the endpoint is back, the same host works, and
    a later brief outage does not sign the app out (its tokens are cached)."""
    api = identity_via_proxy
    user = new_user()
    identities_before = emulator.identities()
    _unavailable(api.token(user))
    _unavailable(api.call("GET", "/api/identity", user))
    health = api.call("GET", "/api/health")
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    assert emulator.identities() == identities_before

    identity_proxy.up()
    issued = _ok(api.token(user))
    assert api.call("GET", "/api/health").status_code == 200

    identity_proxy.down()
    assert _ok(api.token(user, fresh=True))["communicationUserId"] == issued["communicationUserId"]
    identity_proxy.up()
    FIGURES.survived("managed identity endpoint down: 503, recovered")


def test_table_storage_slower_than_the_budget_gives_503_and_no_identity(
    stack: dict, tables_proxy: FaultProxy, tables_back_up: FaultProxy, start_host: Callable[[dict[str, str], str], Api],
    emulator: Emulator,
):
    """Azurite answering after the 2-second budget: 503 with Retry-After, no identity made, and
    the same host serves the user once Table Storage is fast again."""
    parts = urlsplit(stack["tablesEndpoint"])
    api = start_host({"TABLES_ENDPOINT": f"https://127.0.0.1:{tables_proxy.port}{parts.path}",
                      "DEPENDENCY_TIMEOUT_SECONDS": "2"}, "tables-slow")
    user = new_user()
    creates = emulator.calls(*CREATES)
    tables_proxy.delay_seconds = 4
    try:
        _unavailable(api.session.post(f"{api.base}/api/token", headers=user.headers, timeout=20))
    finally:
        tables_proxy.delay_seconds = 0
    assert emulator.calls(*CREATES) == creates, "no identity may be made when the mapping cannot be read"
    issued = _ok(api.token(user))
    assert api.call("GET", "/api/identity", user).json()["communicationUserId"] == issued["communicationUserId"]
    FIGURES.survived("Table Storage slower than the budget: 503, recovered")


@pytest.mark.parametrize("refused", ["account-key", "managed-identity"])
def test_table_storage_refusing_the_credentials_gives_503_and_no_identity(
    stack: dict, start_host: Callable[[dict[str, str], str], Api], emulator: Emulator, refused: str
):
    """A wrong account key (connection strings), or an identity endpoint refusing the service's
    identity (managed identity): 503, never 500, and nothing created at ACS."""
    if refused == "account-key":
        wrong = stack["tablesConnectionString"].replace("AccountKey=", "AccountKey=AAAA", 1)
        overrides = {"TABLES_ENDPOINT": "", "TABLES_CONNECTION_STRING": wrong}
    else:
        overrides = {"IDENTITY_HEADER": "not-the-identity-header"}
    api = start_host(overrides, f"tables-refused-{refused}")
    user = new_user()
    creates = emulator.calls(*CREATES)
    expect_error(api.token(user), 503, "ServiceUnavailable")
    expect_error(api.call("GET", "/api/identity", user), 503, "ServiceUnavailable")
    assert emulator.calls(*CREATES) == creates
    FIGURES.survived(f"Table Storage refusing the credentials ({refused}): 503")


# -- ACS: unreachable, and refusing the service --------------------------------------------------

@pytest.fixture(scope="module")
def acs_proxy(stack: dict) -> Iterator[FaultProxy]:
    parts = urlsplit(stack["acsEndpoint"])
    proxy = FaultProxy(parts.hostname, parts.port).up()
    yield proxy
    proxy.close()


def test_acs_unreachable_gives_503_and_no_mapping_then_recovers(
    acs_proxy: FaultProxy, start_host: Callable[[dict[str, str], str], Api], table: Any
):
    """Nothing listens where ACS should be (connection refused): 503 with Retry-After, no mapping
    written; once ACS is reachable the same host creates the identity."""
    api = start_host({"ACS_ENDPOINT": f"https://127.0.0.1:{acs_proxy.port}"}, "acs-via-proxy")
    known = new_user()
    _ok(api.token(known))
    user = new_user()
    acs_proxy.down()
    try:
        expect_error(api.token(user), 503, "ServiceUnavailable")
        expect_error(api.token(known, fresh=True), 503, "ServiceUnavailable")
        expect_error(api.call("GET", "/api/identity", user), 404, "IdentityNotFound")
    finally:
        acs_proxy.up()
    issued = _ok(api.token(user))
    assert api.call("GET", "/api/identity", user).json()["communicationUserId"] == issued["communicationUserId"]
    FIGURES.survived("ACS unreachable: 503, recovered")


@pytest.mark.parametrize("status", [401, 403])
def test_acs_refusing_the_service_gives_503_not_the_callers_error(api: Api, quiet_emulator: Emulator, status: int):
    """ACS refusing a request the service made (a missing role, the wrong resource) is the
    deployment's problem, not the caller's: 503 with Retry-After on create, issue, revoke and
    delete, no mapping for a first call, and the identity kept when its delete was refused."""
    user = new_user()
    quiet_emulator.fault(status, count=50, operations=["createIdentity"], retry_after=None)
    expect_error(api.token(user), 503, "ServiceUnavailable")
    quiet_emulator.clear_faults()
    expect_error(api.call("GET", "/api/identity", user), 404, "IdentityNotFound")

    issued = _ok(api.token(user))
    quiet_emulator.fault(status, count=50, operations=["issueAccessToken", "revokeAccessTokens", "deleteIdentity"], retry_after=None)
    expect_error(api.token(user, fresh=True), 503, "ServiceUnavailable")
    expect_error(api.call("POST", "/api/token/revoke", user), 503, "ServiceUnavailable")
    expect_error(api.call("DELETE", "/api/identity", user), 503, "ServiceUnavailable")
    quiet_emulator.clear_faults()
    assert issued["communicationUserId"] in quiet_emulator.identities()
    assert api.call("GET", "/api/identity", user).json()["communicationUserId"] == issued["communicationUserId"]
    FIGURES.survived(f"ACS {status} refusing the service: 503, identity kept")
