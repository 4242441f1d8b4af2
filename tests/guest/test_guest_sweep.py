"""Guest identities do not outlive their tokens: the sweep deletes each one whose token expired
(identity at ACS, then its row), keeps the ones still valid, and over repeated cycles neither the
emulator's identities nor the guests partition grows. A guest whose row cannot be written is
deleted at once (503), so ACS never holds one nobody recorded.

The sweep reads each guest's expiry from its row; the tests move that expiry back (age_guests)
instead of waiting out the 60 minutes of a real guest token."""

from __future__ import annotations

import re

from tests.conftest import CREATES, Emulator, expect_error
from tests.guest.conftest import GuestHost, age_guests, ask, guest_rows, new_client


def _count(summary: str, name: str) -> int:
    return int(re.search(rf"\b{name}=(\d+)", summary).group(1))


def _make_guests(guests: GuestHost, count: int) -> set[str]:
    made = set()
    for index in range(count):
        response = ask(guests.api, f"Guest {index}", client=new_client())
        assert response.status_code == 200, response.text
        made.add(response.json()["communicationUserId"])
    return made


def test_the_sweep_deletes_expired_guest_identities_and_keeps_valid_ones(guests: GuestHost, emulator: Emulator, table):
    expired, valid = _make_guests(guests, 4), _make_guests(guests, 1)
    assert expired | valid <= emulator.identities() and expired | valid <= set(guest_rows(table))
    deletes = emulator.calls("deleteIdentity")
    age_guests(table, expired)

    summary = guests.sweep()

    assert _count(summary, "guests_deleted") == 4 and _count(summary, "guests_failed") == 0, summary
    assert emulator.calls("deleteIdentity") - deletes == 4
    live, rows = emulator.identities(), set(guest_rows(table))
    assert not expired & live, "every expired guest identity is gone at ACS"
    assert not expired & rows, "and so are their rows"
    assert valid <= live and valid <= rows, "a guest whose token is still valid keeps it"


def test_repeated_guest_cycles_leave_neither_identities_nor_rows_behind(guests: GuestHost, emulator: Emulator, table):
    identities_before, rows_before = emulator.identities(), set(guest_rows(table))
    for _ in range(3):
        made = _make_guests(guests, 5)
        assert len(emulator.identities()) == len(identities_before) + 5
        age_guests(table, made)
        summary = guests.sweep()
        assert _count(summary, "guests_deleted") == 5, summary
        assert emulator.identities() == identities_before, "the emulator's identity list shrinks back"
        assert set(guest_rows(table)) == rows_before, "the guests partition does not grow"


def test_a_guest_whose_identity_is_already_gone_at_acs_is_forgotten_by_the_sweep(
    guests: GuestHost, emulator: Emulator, table, stack: dict
):
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

    (gone,) = _make_guests(guests, 1)
    CommunicationIdentityClient.from_connection_string(stack["acsConnectionString"]).delete_user(CommunicationUserIdentifier(gone))
    age_guests(table, {gone})
    summary = guests.sweep()
    assert _count(summary, "guests_failed") == 0, summary
    assert gone not in guest_rows(table), "ACS's answer for a gone identity counts as done"


def test_a_guest_whose_record_cannot_be_written_is_deleted_and_answered_503(failing_record, emulator: Emulator, table):
    api, proxy = failing_record
    before, rows = emulator.identities(), set(guest_rows(table))
    created, deleted, inserts = emulator.calls(*CREATES), emulator.calls("deleteIdentity"), proxy.failed_inserts
    expect_error(ask(api, "Ada"), 503, "ServiceUnavailable")
    assert proxy.failed_inserts > inserts, "the guest's row never reached the table"
    assert emulator.calls(*CREATES) - created == 1, "the identity was created"
    assert emulator.calls("deleteIdentity") - deleted == 1, "and deleted again"
    assert emulator.identities() == before and set(guest_rows(table)) == rows
