"""One guest must not be able to spend another guest's per-client budget.

The budget key is the first X-Forwarded-For entry. If the platform keeps a value the client sent
and appends the address it saw (as Azure Front Door documents doing:
learn.microsoft.com/azure/frontdoor/front-door-http-headers-protocol; whether Static Web Apps does
is not documented, README "After September 2028"), the first entry is whatever the client wrote:
an attacker who names a victim's address there spends the victim's budget, and the victim's own
requests get 429. The entry the platform appended (the last one before its own internal hops,
and before the address App Service saw in X-Client-IP) is the one a client cannot choose.

The chains below are what the function app would receive in that case: the client's own text
first, then the client's real address with its port, then the Static Web Apps proxy's internal
hop (``[fd00::…]:port``, as seen in geoffrich/svelte-adapter-azure-swa#71)."""

from __future__ import annotations

import random

import pytest

from tests.conftest import Api

GUEST = "/api/guest/token"
#: The Static Web Apps proxy as App Service saw it (X-Client-IP): the same for every guest.
PROXY = "20.50.0.7"


@pytest.fixture(scope="module")
def guest_api(start_host) -> Api:
    return start_host({"GUEST_ACCESS_ENABLED": "true", "GUEST_REQUESTS_PER_CLIENT_PER_MINUTE": "1",
                       "GUEST_REQUESTS_PER_MINUTE": "1000"}, "guest-address")


def _ask(api: Api, forwarded_for: str) -> tuple[int, str | None]:
    response = api.call("POST", GUEST, headers={"X-Forwarded-For": forwarded_for, "X-Client-IP": PROXY},
                        json={"displayName": "Ada Lovelace"})
    made = response.json().get("communicationUserId") if response.status_code == 200 else None
    return response.status_code, made


def _forget_guests(stack: dict, table, identities: list[str]) -> None:
    """Delete the guest identities this test made (at ACS, then their rows), as the sweep would."""
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

    client = CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"])
    for identity in identities:
        client.delete_user(CommunicationUserIdentifier(identity))
        table.delete_entity("guests", identity)


def test_a_guest_cannot_spend_another_guests_budget_by_naming_their_address(guest_api: Api, stack: dict, table):
    victim = f"203.0.113.{random.randrange(1, 255)}"
    attacker = f"198.51.100.{random.randrange(1, 255)}"
    made: list[str] = []
    try:
        status, identity = _ask(guest_api, f"{victim}, {attacker}:{random.randrange(1024, 65535)}, [fd00::a1]:64909")
        made += [identity] if identity else []
        assert status == 200, "the attacker's own first guest token"
        status, identity = _ask(guest_api, f"{victim}:{random.randrange(1024, 65535)}, [fd00::a2]:64910")
        made += [identity] if identity else []
        assert status == 200, f"the victim's first guest request of the minute got {status}: the attacker spent it"
    finally:
        _forget_guests(stack, table, made)
