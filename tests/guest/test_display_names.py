"""The display name a guest types is input like any other: a generated corpus of bad names is
refused with 400 InvalidDisplayName (structural mistakes with their own codes), never a 5xx,
without an ACS call or a budget spent; names people really have are accepted and handed back
trimmed."""

from __future__ import annotations

import itertools
import json
import random

from tests.conftest import CREATES, Emulator, expect_error
from tests.guest.conftest import GuestHost, ask, new_client

#: Characters no name may hold: C0/C1 controls, format characters (bidi overrides and isolates,
#: zero-width ones, the BOM), line and paragraph separators, private use, unassigned.
_FORBIDDEN = (
    [chr(c) for c in range(0x00, 0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)]
    + ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
       "\u2066", "\u2067", "\u2068", "\u2069", "\ufeff", "\u2028", "\u2029", "\u00ad", "\ue000", "\U000f0000", "\u0378"]
)
#: Symbols, markup and quoting characters: not letters, digits or the punctuation names use.
_SYMBOLS = list('<>"`\\{}[]|;=*%$^~') + ["😀", "👍🏽", "€", "©", "™", "→", "∑", "♥", "\u3000", "\u00a0", "\u2003"]


def _bad_names() -> list[object]:
    rng = random.Random(17)
    names: list[object] = ["", " ", "     ", "a" * 65, " " * 3 + "b" * 65, "x" * 300, "Ada  Lovelace", ".", "-- --", "'", "()"]
    for char, where in itertools.product(_FORBIDDEN + _SYMBOLS, ("start", "middle", "end", "alone")):
        names.append({"start": char + "Ada", "middle": "Ad" + char + "a", "end": "Ada" + char, "alone": char}[where])
    names += ["Za\u0301\u0301\u0301\u0301\u0301lgo", "\u0301Ada", "<script>alert(1)</script>", "Ada\tLovelace", "Ada\nLovelace",
              "Robert'); DROP TABLE guests;--", "=cmd|' /C calc'!A0", "${jndi:ldap://x}", "{{7*7}}"]
    for _ in range(200):  # random mixtures with at least one forbidden character
        good = rng.choices("abcdefghij XYZ.-'", k=rng.randrange(1, 20))
        good.insert(rng.randrange(len(good) + 1), rng.choice(_FORBIDDEN + _SYMBOLS))
        names.append("".join(good))
    names += [None, 17, 1.5, True, [], ["Ada"], {"first": "Ada"}]
    return names


def _raw_with_lone_surrogates() -> list[bytes]:
    """JSON can spell lone surrogates, which Python then holds in a str: names with them."""
    return [json.dumps({"displayName": name}).encode().replace(b"SURR", esc)
            for name, esc in itertools.product(("SURR", "AdaSURR", "SURRAda", "AdSURRa"), (b"\\ud800", b"\\udfff", b"\\udbff"))]


def test_a_generated_corpus_of_bad_display_names_is_refused_with_400_and_costs_nothing(guests: GuestHost, emulator: Emulator):
    corpus = _bad_names()
    raw = _raw_with_lone_surrogates()
    assert len(corpus) + len(raw) == 695, "the README quotes this corpus size"
    client = new_client()  # one client for all: a refused name does not spend the budget
    before = emulator.calls(*CREATES)
    for name in corpus:
        expect_error(ask(guests.api, name, client=client), 400, "InvalidDisplayName")
    for body in raw:
        expect_error(ask(guests.api, client=client, data=body, headers={"Content-Type": "application/json"}), 400,
                     "InvalidDisplayName")
    expect_error(ask(guests.api, client=client, json={}), 400, "InvalidDisplayName")
    expect_error(ask(guests.api, client=client, json={"displayName": "Ada", "scopes": ["chat"]}), 400, "UnknownField")
    expect_error(ask(guests.api, client=client, data=b"{", headers={"Content-Type": "application/json"}), 400, "MalformedJson")
    expect_error(ask(guests.api, client=client, json=["Ada"]), 400, "MalformedJson")
    expect_error(ask(guests.api, client=client, data=b'{"displayName":"' + b"a" * 17_000 + b'"}',
                     headers={"Content-Type": "application/json"}), 413, "PayloadTooLarge")
    assert emulator.calls(*CREATES) == before, "no bad name reached ACS"
    assert ask(guests.api, "Still Allowed", client=client).status_code == 200, "and none of them spent the client's budget"


GOOD_NAMES = {
    "  Ada Lovelace ": "Ada Lovelace",
    "Seán O'Brien": "Seán O'Brien",
    "Anne-Marie Dupont-Lefèvre": "Anne-Marie Dupont-Lefèvre",
    "Dr. Who (guest)": "Dr. Who (guest)",
    "李小龙": "李小龙",
    "Zoë & Chloë": "Zoë & Chloë",
    "محمد": "محمد",
    "देवनागरी": "देवनागरी",
    "R2-D2": "R2-D2",
    "a" * 64: "a" * 64,
    "Ｍａｒｉａ": "Ｍａｒｉａ",
    "Zoe\u0308": "Zoe\u0308",
}


def test_names_people_have_are_accepted_and_handed_back_trimmed(guests: GuestHost):
    for typed, shown in GOOD_NAMES.items():
        response = ask(guests.api, typed)
        assert response.status_code == 200, (typed, response.text)
        assert response.json()["displayName"] == shown
