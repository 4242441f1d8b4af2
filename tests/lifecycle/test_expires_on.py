"""ACS's expiresOn: any offset, 0-7 fractional digits (real samples from ../ACS_FACTS.md and the
recordings), always read as the same instant in UTC."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared.acs_identity import to_utc


@pytest.mark.parametrize(
    "raw, utc",
    [
        ("2022-11-15T10:47:56.6575944+00:00", "2022-11-15T10:47:56.657594"),  # 7 digits, as ACS sends
        ("2023-10-19T13:46:37.263734+00:00", "2023-10-19T13:46:37.263734"),  # trailing zero trimmed
        ("2023-12-14T11:59:00.681802+00:00", "2023-12-14T11:59:00.681802"),
        ("2022-11-15T10:47:56.1234567-07:00", "2022-11-15T17:47:56.123456"),
        ("2022-11-15T10:47:56.1+05:30", "2022-11-15T05:17:56.100000"),
        ("2022-11-15T23:47:56.12-11:00", "2022-11-16T10:47:56.120000"),
        ("2022-11-15T10:47:56+14:00", "2022-11-14T20:47:56"),
        ("2022-11-15T10:47:56Z", "2022-11-15T10:47:56"),
        ("2022-11-15T10:47:56.9999999Z", "2022-11-15T10:47:56.999999"),  # never rounded into the next second
        ("2022-11-15T10:47:56", "2022-11-15T10:47:56"),  # no offset: UTC
        ("2022-11-15T10:47:56.123-0700", "2022-11-15T17:47:56.123000"),
    ],
)
def test_expires_on_variants_parse_to_the_same_instant_in_utc(raw: str, utc: str):
    parsed = to_utc(raw)
    assert parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0
    assert parsed == datetime.fromisoformat(utc).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("raw", ["", "tomorrow", "2022-11-15", "2022-11-15T10:47:56.12345678+00:00", "2022-11-15T10:47:56+25"])
def test_unreadable_expires_on_is_refused_not_misread(raw: str):
    with pytest.raises(ValueError):
        to_utc(raw)
