"""Fuzz `waitlist bounce` as Postfix's pipe runs it: one message on stdin, no environment but
`WAITLIST_CONFIG`, the tag as the argument or none.

Hypothesis feeds random bytes, random header-shaped text, and real Postfix DSNs with bytes flipped,
inserted and deleted (and with lines dropped or repeated). Whatever comes in, the command must exit
0 (handled or discarded) or 65 (not a mail), never die of a signal or answer anything else, and
never write mail. A DSN whose tags are all forged (signed with another key) must leave the
subscriber it names alone, however it is mangled; a DSN with the real tag may bounce it.

The tag the service makes is computed here independently: HMAC-SHA256 over `bounce-tag`, a NUL and
the outbox row's number, with the key the service keeps in its database, cut to 10 bytes and
written in lower-case base32.
"""

import base64
import hashlib
import hmac
import os
import sqlite3
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import waitlist_binary

FUZZ_SETTINGS = dict(
    deadline=None, derandomize=True, database=None, print_blob=True, max_examples=120,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


class Site:
    """A database with one confirmed subscriber who was sent one message, and its settings file."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.database = directory / "w.sqlite"
        self.mail_dir = directory / "mail"
        self.config = directory / "waitlist.env"
        self.config.write_text(
            f"WAITLIST_DATABASE={self.database}\nWAITLIST_MAIL_DIR={self.mail_dir}\n"
            "WAITLIST_BOUNCE_ADDRESS=bounces@school.example\nWAITLIST_LOG_LEVEL=warning\n"
        )
        # `status` creates and migrates the database; the first bounce makes the tag key.
        subprocess.run(
            [str(waitlist_binary()), "status"], env={"WAITLIST_CONFIG": str(self.config)}, cwd=directory,
            capture_output=True, check=True, timeout=60,
        )
        first = self.pipe(b"Subject: hello\n\nnothing\n")
        assert first.returncode == 0, first.stderr
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.000")
        with sqlite3.connect(self.database) as db:
            db.execute(
                "INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt, confirmedAt)"
                " VALUES (1, 'anna@example.com', 'anna@example.com', 'ru', 'confirmed', ?, ?)", (now, now))
            subscriber = db.execute("SELECT id FROM subscriber WHERE email = 'anna@example.com'").fetchone()[0]
            db.execute(
                "INSERT INTO outbox (kind, subscriberId, state, nextAttemptAt, createdAt, sentAt)"
                " VALUES ('confirmation', ?, 'sent', ?, ?, ?)", (subscriber, now, now, now))
            self.outbox_id = db.execute("SELECT max(id) FROM outbox").fetchone()[0]
            self.key = db.execute("SELECT value FROM secret WHERE name = 'bounce-tag'").fetchone()[0]

    def tag(self, outbox_id: int, key: bytes | None = None) -> str:
        message = b"bounce-tag\x00" + str(outbox_id).encode()
        code = hmac.new(key or self.key, message, hashlib.sha256).digest()[:10]
        return f"{outbox_id}-" + base64.b32encode(code).decode().lower().rstrip("=")

    def pipe(self, data: bytes, *arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(waitlist_binary()), "bounce", *arguments], input=data, capture_output=True,
            env={"WAITLIST_CONFIG": str(self.config)}, cwd=self.directory, timeout=60,
        )

    def status(self) -> str:
        with sqlite3.connect(self.database) as db:
            return db.execute("SELECT status FROM subscriber WHERE email = 'anna@example.com'").fetchone()[0]

    def reset(self) -> None:
        with sqlite3.connect(self.database) as db:
            db.execute("UPDATE subscriber SET status = 'confirmed', bouncedAt = NULL, bounceReply = NULL")

    def no_mail(self) -> bool:
        return not self.mail_dir.exists() or not any(self.mail_dir.iterdir())


def postfix_dsn(tag: str) -> bytes:
    """A delivery status notification as Postfix writes it, to `bounces+TAG@school.example`."""
    envelope = f"bounces+{tag}@school.example"
    boundary = "8E1F3A2B.1764590000/mx.school.example"
    return "\n".join([
        f"Delivered-To: {envelope}",
        "From: MAILER-DAEMON@mx.school.example (Mail Delivery System)",
        "Subject: Undelivered Mail Returned to Sender",
        f"To: {envelope}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "<anna@example.com>: host mx.example.com[192.0.2.25] said: 550 5.1.1 User unknown",
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.school.example",
        "",
        "Final-Recipient: rfc822; anna@example.com",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <anna@example.com>: Recipient address",
        "    rejected: User unknown",
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
        f"Return-Path: <{envelope}>",
        "To: anna@example.com",
        "",
        f"--{boundary}--",
        "",
    ]).encode()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return Site(tmp_path_factory.mktemp("bounce"))


def mutated(base: bytes):
    """`base` with a few bytes flipped, inserted or deleted, or lines dropped or repeated."""
    edit = st.tuples(
        st.sampled_from(["flip", "insert", "delete", "drop-line", "repeat-line"]),
        st.floats(min_value=0, max_value=1), st.binary(min_size=1, max_size=8),
    )

    def apply(edits):
        data = bytearray(base)
        for kind, where, chunk in edits:
            if kind in ("drop-line", "repeat-line"):
                lines = bytes(data).split(b"\n")
                index = int(where * (len(lines) - 1))
                if kind == "drop-line":
                    del lines[index]
                else:
                    lines.insert(index, lines[index])
                data = bytearray(b"\n".join(lines))
                continue
            index = int(where * max(len(data) - 1, 0))
            if kind == "flip" and data:
                data[index] ^= chunk[0] or 1
            elif kind == "insert":
                data[index:index] = chunk
            elif data:
                del data[index:index + len(chunk)]
        return bytes(data)

    return st.lists(edit, min_size=1, max_size=6).map(apply)


def check(result: subprocess.CompletedProcess, site: Site) -> None:
    assert result.returncode in (0, 65), f"exit {result.returncode}: {result.stderr.decode(errors='replace')}"
    assert b"Fatal error" not in result.stderr
    assert site.no_mail()


@settings(**FUZZ_SETTINGS)
@given(data=st.binary(max_size=4096))
def test_random_bytes_exit_0_or_65(site, data):
    check(site.pipe(data), site)


@settings(**FUZZ_SETTINGS)
@given(
    header=st.lists(st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=80)), max_size=8),
    body=st.text(max_size=400),
)
def test_header_shaped_text_exits_0_or_65(site, header, body):
    text = "".join(f"{name}: {value}\r\n" for name, value in header) + "\r\n" + body
    check(site.pipe(text.encode("utf-8", errors="surrogatepass")), site)


@settings(**FUZZ_SETTINGS)
@given(data=st.data())
def test_mangled_forged_dsn_never_bounces(site, data):
    site.reset()
    forged = site.tag(site.outbox_id, key=b"\x01" * 32)
    message = data.draw(mutated(postfix_dsn(forged)))
    argument = data.draw(st.sampled_from([[], [forged], [forged.upper()]]))
    check(site.pipe(message, *argument), site)
    assert site.status() == "confirmed"


@settings(**FUZZ_SETTINGS)
@given(data=st.data())
def test_mangled_real_dsn_is_handled(site, data):
    site.reset()
    tag = site.tag(site.outbox_id)
    message = data.draw(mutated(postfix_dsn(tag)))
    argument = data.draw(st.sampled_from([[], [tag], [tag.upper()]]))
    check(site.pipe(message, *argument), site)
    assert site.status() in ("confirmed", "bounced")


def test_the_unmangled_dsn_bounces(site):
    """The fuzzed DSN itself is one the command acts on: the fuzzing is not of dead input."""
    site.reset()
    result = site.pipe(postfix_dsn(site.tag(site.outbox_id)))
    assert result.returncode == 0, result.stderr
    assert site.status() == "bounced"
    site.reset()
    result = site.pipe(postfix_dsn(site.tag(site.outbox_id, key=b"\x01" * 32)))
    assert result.returncode == 0, result.stderr
    assert site.status() == "confirmed"
