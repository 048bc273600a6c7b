#!/usr/bin/env python3
"""A small SMTP server for the waitlist's live tests, built on aiosmtpd.

    python3 Tests/support/smtp_server.py --port 0 --maildir DIR
        [--auth USER:PASS] [--auth-without-tls]
        [--starttls CERT KEY] [--require-starttls] [--silent] [--refuse-all]
        [--hold-after N] [--spell-after N --spell-seconds S]

Prints `READY <port>` on stdout once it listens, and stops when stdin closes or on SIGTERM.

Every accepted message is written into DIR as `<n>.eml` (the DATA exactly as received, with
dot-stuffing undone) and then `<n>.json` (the envelope and the connection it came over); both
are written to a temporary name first and renamed, so a `.json` file means its `.eml` is complete.
Every AUTH attempt is appended to `DIR/auth.jsonl` as `{"login": ..., "success": ..., "tls": ...}`.

Behaviour chosen by address, for testing failures:
  recipient `reject...@`  550 5.1.1 no such user     (at RCPT)
  recipient `defer...@`   451 4.3.0 try again later  (at RCPT)
  recipient `flaky...@`   451 4.3.0 the first time that address is given, then accepted
  with --refuse-all, every recipient: 554 5.7.1 relay access denied (a relay refusing us)
  recipient `spam...@`    554 5.7.1 message refused  (at the end of DATA)
  sender    `reject...@`  553 5.7.1 sender not allowed (at MAIL FROM)

With --spell-after N, once N messages were accepted the server answers every MAIL FROM with
`421 4.3.2 try again later` (and hangs up) for --spell-seconds S, as a relay that is overloaded
does; the spell's start creates `DIR/spell`.

With --hold-after N, the messages after the first N are held at the end of DATA, unanswered,
until a file `DIR/release` exists; the first one held creates `DIR/held`. A test can so stop or
kill a client at a known point, with messages in flight, whatever the machine's load.
"""

import argparse
import asyncio
import itertools
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def local_part(address):
    """The part of an address before the last `@`, lower-cased."""
    return address.rpartition("@")[0].lower()


def write_atomically(path, data):
    """Writes bytes to `path` through a temporary file and a rename."""
    temporary = path + ".tmp"
    with open(temporary, "wb") as file:
        file.write(data)
    os.rename(temporary, path)


class MaildirHandler:
    """aiosmtpd hooks: applies the address rules above and stores accepted messages."""

    def __init__(self, maildir, credentials, refuse_all=False, hold_after=None, pipelining=False, close_after=None,
                 spell_after=None, spell_seconds=0.0):
        self.maildir = maildir
        self.spell_after = spell_after
        self.spell_seconds = spell_seconds
        self.spell_until = None
        self.pipelining = pipelining
        self.close_after = close_after
        self.closed_connections = 0
        self.credentials = credentials
        self.refuse_all = refuse_all
        self.hold_after = hold_after
        self.data_arrivals = 0
        self.deferred_once = set()
        self.message_numbers = itertools.count(1)
        self.accepted = 0

    async def hold_until_released(self):
        """Waits, without answering, until `release` exists; says so once in `held`."""
        release = os.path.join(self.maildir, "release")
        held = os.path.join(self.maildir, "held")
        if os.path.exists(release):
            return
        if not os.path.exists(held):
            write_atomically(held, b"")
        while not os.path.exists(release):
            await asyncio.sleep(0.01)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        """aiosmtpd's answer to EHLO, with PIPELINING (RFC 2920) among the extensions if asked for.

        aiosmtpd reads commands one line at a time, so it serves pipelined commands as they are; it
        only does not say so."""
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    def in_spell(self):
        """Whether the 421 spell is on: it starts once `spell_after` messages were accepted."""
        if self.spell_after is None or self.accepted < self.spell_after:
            return False
        now = asyncio.get_running_loop().time()
        if self.spell_until is None:
            self.spell_until = now + self.spell_seconds
            write_atomically(os.path.join(self.maildir, "spell"), b"")
        return now < self.spell_until

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.in_spell():
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 try again later"
        if local_part(address).startswith("reject"):
            return "553 5.7.1 sender not allowed"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        # Whether RCPT TO came with MAIL FROM, before this answer: the client pipelined them.
        envelope.pipelined = b"RCPT" in bytes(server._reader._buffer)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = local_part(address)
        if self.refuse_all:
            return "554 5.7.1 relay access denied"
        if local.startswith("flaky") and address.lower() not in self.deferred_once:
            self.deferred_once.add(address.lower())
            return "451 4.3.0 try again later"
        if local.startswith("reject"):
            return "550 5.1.1 no such user"
        if local.startswith("defer"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(local_part(address).startswith("spam") for address in envelope.rcpt_tos):
            return "554 5.7.1 message refused"
        self.data_arrivals += 1
        if self.hold_after is not None and self.data_arrivals > self.hold_after:
            await self.hold_until_released()
        number = next(self.message_numbers)
        self.accepted = number
        base = os.path.join(self.maildir, str(number))
        write_atomically(base + ".eml", envelope.original_content)
        envelope_record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "peer": "%s:%d" % session.peer[:2],
            "tls": session.ssl is not None,
            "authenticated": session.authenticated is True,
            "pipelined": getattr(envelope, "pipelined", False),
            # Whether the next message's MAIL FROM came with this one's end, before its answer.
            "next_envelope_ahead": b"MAIL" in bytes(server._reader._buffer),
        }
        write_atomically(base + ".json", json.dumps(envelope_record, ensure_ascii=False).encode())
        session.messages = getattr(session, "messages", 0) + 1
        if self.close_after is not None and session.messages >= self.close_after:
            # Hang up once the answer below is written, as a relay that limits messages per connection does.
            asyncio.get_running_loop().call_soon(self.hang_up, server)
        return "250 OK"

    def hang_up(self, server):
        server.transport.close()
        self.closed_connections += 1
        write_atomically(os.path.join(self.maildir, "hung-up"), str(self.closed_connections).encode())

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        """aiosmtpd's authenticator: checks the login and records the attempt."""
        success = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        attempt = {
            "login": auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None,
            "success": success,
            "tls": session.ssl is not None,
        }
        with open(os.path.join(self.maildir, "auth.jsonl"), "a") as log:
            log.write(json.dumps(attempt) + "\n")
        # handled=False lets aiosmtpd answer 235 or 535 itself.
        return AuthResult(success=success, handled=False)


def parse_arguments():
    parser = argparse.ArgumentParser(description="SMTP server for the waitlist's live tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--maildir", required=True, help="where accepted messages are written")
    parser.add_argument("--auth", metavar="USER:PASS", help="require this login before MAIL FROM")
    parser.add_argument("--auth-without-tls", action="store_true", help="offer AUTH on a clear connection")
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"), help="offer STARTTLS with this certificate")
    parser.add_argument("--require-starttls", action="store_true", help="refuse commands until STARTTLS")
    parser.add_argument("--silent", action="store_true", help="accept connections but never answer (for timeouts)")
    parser.add_argument("--refuse-all", action="store_true", help="refuse every recipient with 554 (a relay refusing us)")
    parser.add_argument("--pipelining", action="store_true", help="offer PIPELINING in the answer to EHLO")
    parser.add_argument("--close-after", type=int, metavar="N", help="hang up after N messages on a connection")
    parser.add_argument("--hold-after", type=int, metavar="N", help="hold the messages after the first N until DIR/release exists")
    parser.add_argument("--spell-after", type=int, metavar="N", help="after N messages, answer 421 to MAIL FROM for a while")
    parser.add_argument("--spell-seconds", type=float, default=10.0, metavar="S", help="how long the 421 spell lasts")
    return parser.parse_args()


async def serve(arguments):
    os.makedirs(arguments.maildir, exist_ok=True)
    credentials = tuple(arguments.auth.split(":", 1)) if arguments.auth else None
    handler = MaildirHandler(
        arguments.maildir,
        credentials,
        refuse_all=arguments.refuse_all,
        hold_after=arguments.hold_after,
        pipelining=arguments.pipelining,
        close_after=arguments.close_after,
        spell_after=arguments.spell_after,
        spell_seconds=arguments.spell_seconds,
    )
    tls_context = None
    if arguments.starttls:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(*arguments.starttls)

    def new_connection():
        return SMTP(
            handler,
            hostname="waitlist-test-smtp",
            enable_SMTPUTF8=True,
            tls_context=tls_context,
            require_starttls=arguments.require_starttls,
            authenticator=handler.authenticate if credentials else None,
            auth_required=credentials is not None,
            auth_require_tls=not arguments.auth_without_tls,
        )

    loop = asyncio.get_running_loop()
    protocol_factory = asyncio.Protocol if arguments.silent else new_connection
    server = await loop.create_server(protocol_factory, arguments.host, arguments.port)
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)

    def read_stdin():
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            stopped.set()

    loop.add_reader(sys.stdin.fileno(), read_stdin)
    print("READY %d" % server.sockets[0].getsockname()[1], flush=True)
    await stopped.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(serve(parse_arguments()))
