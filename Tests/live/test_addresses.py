"""Addresses as a running `waitlist serve` takes them through `POST /api/subscribe`.

- Agreement with PyPI's `email-validator` (syntax only: no DNS; its test environment, so `.test` is a domain) on a
  corpus of addresses people type and attackers try: every disagreement must be of a kind named
  and explained here, and the agreement is printed.
- A hypothesis fuzz of the canonical form: however an address is spelled (case, NFC or NFD,
  compatibility forms of the domain, its punycode form), every spelling is one subscriber.
"""

import json
import re
import subprocess
import unicodedata

import email_validator
import idna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import waitlist_binary

# What people type, and what attackers try.
CORPUS = [
    "anna@example.com", "Anna.Petrova+course@mail.example.co.uk", "a@b.io", "x_y-z@sub-domain.example.org",
    "анна@пример.рф", "josé@example.com", "jose\u0301@example.com", "bob@exämple.test", "bob@xn--exmple-cua.test",
    "bob@ｖｉｃｔｉｍ.test", "bob@ⅴictim.test", "o'connor@example.ie", "straße@faß.de", "用户@例子.广告",
    "a" * 64 + "@example.com", "a" * 65 + "@example.com", "anna@localhost", "anna@example", "anna@example..com",
    "anna@-example.com", "anna@exa_mple.com", "an na@example.com", ".anna@example.com", "anna.@example.com",
    "an..na@example.com", '"anna"@example.com', "<anna>@example.com", "anna@@example.com", "anna.example.com",
    "bo\u034fb@example.com", "bob\u200b@example.com", "an\u202ena@example.com", "bob@xn--a.test", "bob@1\u05d0.test",
    "i❤@example.com", "bob@i❤.ws", "bob@☃.net", "bob@example.123", "bob@[127.0.0.1]", "anna%x@example.com",
    "anna#x@example.com", "anna!x@example.com", "anna{x}@example.com", "anna|x@example.com", "anna~x@example.com",
    "anna=x@example.com", "anna?x@example.com", "anna^x@example.com", "anna`x@example.com", "anna/x@example.com",
    "anna*x@example.com", "anna$x@example.com", "anna&x@example.com", "bob@ab--cd.test", "bob@l·l.cat",
]

# Every kind of disagreement there may be, and why: (test on the address, the waitlist's verdict, why).
EXPLAINED = [
    (lambda a: a.split("@")[-1] in ("i❤.ws", "☃.net"), True,
     "a symbol in the domain: UTS #46 (which the waitlist follows, as the contract says) allows it and "
     "resolvers look it up; email-validator applies IDNA 2008's stricter code point classes"),
    (lambda a: any(unicodedata.category(c) == "Mn" and c in "\u034f\u180b\u180c\u180d\ufe00\ufe0f" for c in a), False,
     "an invisible (default-ignorable) code point such as U+034F: the waitlist refuses every one, so that no two "
     "addresses differ by what nobody sees; email-validator refuses only some of them"),
]


def waitlist_accepts(server, address: str) -> bool:
    status, _, body = server.request(
        "POST", "/api/subscribe", body=json.dumps({"email": address}).encode(), headers={"Content-Type": "application/json"})
    assert status in (202, 422), (address, status, body)
    return status == 202


def validator_accepts(address: str) -> bool:
    try:
        email_validator.validate_email(address, check_deliverability=False, test_environment=True, strict=True)
        return True
    except email_validator.EmailNotValidError:
        return False


def test_agreement_with_email_validator(start_server):
    server = start_server(rate_limit="off")
    agreed, explained = 0, {}
    for address in CORPUS:
        ours, theirs = waitlist_accepts(server, address), validator_accepts(address)
        if ours == theirs:
            agreed += 1
            continue
        reasons = [why for test, verdict, why in EXPLAINED if test(address) and verdict == ours]
        assert reasons, f"unexplained: {address!r} waitlist {'accepts' if ours else 'refuses'}, email-validator does not"
        explained[reasons[0][:40]] = explained.get(reasons[0][:40], 0) + 1
    print(f"email-validator agreement: {agreed} of {len(CORPUS)}; explained disagreements: {explained}")
    assert agreed >= len(CORPUS) - 5


def subscriber_count(server) -> int:
    status = subprocess.run(
        [str(waitlist_binary()), "status", "--json"], capture_output=True, text=True, check=True,
        env={"WAITLIST_DATABASE": str(server.directory / "w.sqlite"), "PATH": "/usr/bin:/bin"})
    return int(re.search(r'"pending" : (\d+)', status.stdout).group(1))


FULLWIDTH = {chr(c): chr(c - 0x21 + 0xFF01) for c in range(0x21, 0x7F)}
local_parts = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzäöüéñßçøåжщыя0123456789"), min_size=1, max_size=12)
labels = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzäöüéñçøåжщыя0123456789"), min_size=1, max_size=10)


def spellings(local: str, domain: str, choices) -> list[str]:
    """The same mailbox written as a person or an attacker might."""
    variants = [f"{local}@{domain}", f"{local.upper()}@{domain.upper()}", f"{local.casefold()}@{domain}",
                unicodedata.normalize("NFD", f"{local}@{domain}"),
                f"{local}@" + idna.encode(domain, uts46=True).decode("ascii"),
                f"{local}@" + "".join(FULLWIDTH.get(c, c) for c in domain)]
    return [v for v, keep in zip(variants, choices) if keep] or variants[:1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(local=local_parts, label=labels, choices=st.lists(st.booleans(), min_size=6, max_size=6))
def test_every_spelling_of_one_address_is_one_subscriber(start_server, local, label, choices):
    if not hasattr(test_every_spelling_of_one_address_is_one_subscriber, "server"):
        test_every_spelling_of_one_address_is_one_subscriber.server = start_server(rate_limit="off")
        test_every_spelling_of_one_address_is_one_subscriber.calls = 0
    server = test_every_spelling_of_one_address_is_one_subscriber.server
    # Every call gets a mailbox of its own (hypothesis calls again while it shrinks).
    test_every_spelling_of_one_address_is_one_subscriber.calls += 1
    local = f"u{test_every_spelling_of_one_address_is_one_subscriber.calls}{local}"
    domain = f"{label}.test"
    try:
        idna.encode(domain, uts46=True)
    except idna.IDNAError:
        return  # not a domain at all: nothing to compare
    before = subscriber_count(server)
    for spelling in spellings(local, domain, choices):
        assert waitlist_accepts(server, spelling), spelling
    assert subscriber_count(server) == before + 1, f"spellings of {local}@{domain} made {subscriber_count(server) - before} subscribers"
