"""Every mail kind as a relay receives it: DKIM signatures checked by dkimpy, and SpamAssassin's score.

One run per key set starts `waitlist serve` with DKIM keys made by `waitlist dkim-keygen`, sending
through the aiosmtpd server of Tests/support (so the bytes checked are the ones that crossed SMTP,
dot-stuffing undone); two people sign up (Russian and English) and confirm, `waitlist open` mails
both, and `waitlist test-mail` sends one test message. The public keys are derived here from the
private key files with `cryptography`, not taken from the waitlist, and handed to dkimpy as the DNS
answer; `waitlist dkim-record` must publish the same.
"""

import base64
import email
import email.policy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from conftest import REPO_ROOT, free_port, waitlist_binary

SMTP_SERVER = REPO_ROOT / "Tests" / "support" / "smtp_server.py"
DOMAIN = "school.example"
# The headers every signature must cover (the contract's list, and From and Subject once more).
REQUIRED = ["from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"]


def public_record(path: Path) -> bytes:
    """The DKIM TXT value for a private key file, derived here from the key itself."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    assert isinstance(key, ed25519.Ed25519PrivateKey), f"{path} holds neither an RSA nor an Ed25519 key"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)


class MailRun:
    """The mail of one run: confirmations, announcements and a test message, as the relay got them."""

    def __init__(self, directory: Path, keys: list[str]):
        self.directory = directory
        self.records: dict[bytes, bytes] = {}
        self.key_paths: dict[str, Path] = {}
        entries = []
        for key_type in keys:
            path = directory / f"{key_type}.pem"
            self.run_cli("dkim-keygen", "--type", key_type, str(path))
            assert path.stat().st_mode & 0o777 == 0o640, f"{path} is not written by its owner only and read by its group only"
            selector = f"sel-{key_type}"
            self.key_paths[selector] = path
            self.records[f"{selector}._domainkey.{DOMAIN}.".encode()] = public_record(path)
            entries.append(f"{selector}:{path}")
        self.maildir = directory / "relay"
        self.maildir.mkdir()
        self.relay = subprocess.Popen(
            [sys.executable, str(SMTP_SERVER), "--port", "0", "--maildir", str(self.maildir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.relay.stdout.readline().split()
        assert ready and ready[0] == "READY", f"the SMTP server did not start: {ready}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.environment = {key: value for key, value in os.environ.items() if not key.startswith("WAITLIST_")} | {
            "WAITLIST_DATABASE": str(directory / "w.sqlite"),
            "WAITLIST_SMTP_URL": f"smtp://127.0.0.1:{ready[1]}",
            "WAITLIST_MAIL_FROM": f"Школа переговоров <waitlist@{DOMAIN}>",
            "WAITLIST_BASE_URL": "https://waitlist.school.example",
            "WAITLIST_SIGNUP_RATE_LIMIT": "off",
            "WAITLIST_LOG_LEVEL": "warning",
        }
        if entries:
            self.environment["WAITLIST_DKIM_KEYS"] = ",".join(entries)
        try:
            self.mails = self.collect()
        finally:
            self.relay.stdin.close()
            self.relay.wait(timeout=10)

    def run_cli(self, *arguments: str) -> str:
        environment = getattr(self, "environment", {key: value for key, value in os.environ.items() if not key.startswith("WAITLIST_")})
        result = subprocess.run([str(waitlist_binary()), *arguments], cwd=REPO_ROOT, env=environment, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"waitlist {' '.join(arguments)} exited {result.returncode}: {result.stderr}"
        return result.stdout

    def received(self) -> list[bytes]:
        return [path.with_suffix(".eml").read_bytes() for path in sorted(self.maildir.glob("*.json"))]

    def wait_for(self, count: int) -> list[bytes]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            mails = self.received()
            if len(mails) >= count:
                return mails
            time.sleep(0.1)
        raise AssertionError(f"the relay got {len(self.received())} messages, not {count}")

    def collect(self) -> dict[str, bytes]:
        import http.client

        log = open(self.directory / "serve.log", "wb")
        server = subprocess.Popen([str(waitlist_binary()), "serve", "--hostname", "127.0.0.1", "--port", str(self.port)],
                                  cwd=REPO_ROOT, env=self.environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def post(path: str, body: bytes, content_type: str) -> int:
            deadline = time.monotonic() + 60
            while True:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                try:
                    connection.request("POST", path, body=body, headers={"Content-Type": content_type, "Origin": "https://waitlist.school.example"})
                    return connection.getresponse().status
                except ConnectionRefusedError:
                    assert server.poll() is None and time.monotonic() < deadline, (self.directory / "serve.log").read_text()
                    time.sleep(0.1)
                finally:
                    connection.close()

        try:
            for address, locale in [("anna@example.com", "ru"), ("bob@example.com", "en")]:
                body = json.dumps({"email": address, "locale": locale}).encode()
                assert post("/api/subscribe", body, "application/json") == 202
            confirmations = self.wait_for(2)
            for message in confirmations:
                text = email.message_from_bytes(message, policy=email.policy.default).get_body(("plain",)).get_content()
                token = re.search(r"/confirm/([A-Za-z0-9_-]+)", text).group(1)
                assert post(f"/confirm/{token}", b"", "application/x-www-form-urlencoded") == 200
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()
        self.run_cli("open", "--date", "2027-03-15", "--url", "https://school.example/enrol", "--yes")
        self.run_cli("test-mail", "carol@example.com")
        mails = self.wait_for(5)
        assert len(mails) == 5, f"the relay got {len(mails)} messages, not 5"
        kinds = {}
        for message in mails:
            parsed = email.message_from_bytes(message, policy=email.policy.default)
            text = parsed.get_body(("plain",)).get_content()
            kind = "test" if parsed["To"] == "carol@example.com" else ("confirmation" if "/confirm/" in text else "announcement")
            language = "en" if parsed["To"].startswith("bob") else "ru"
            kinds[f"{kind}-{language}" if kind != "test" else kind] = message
        assert sorted(kinds) == ["announcement-en", "announcement-ru", "confirmation-en", "confirmation-ru", "test"], sorted(kinds)
        return kinds

    def dns(self, name: bytes, timeout: int = 5) -> bytes | None:
        return self.records.get(name)


KEY_SETS = {"rsa": ["rsa"], "ed25519": ["ed25519"], "both": ["rsa", "ed25519"], "none": []}
_runs: dict[str, MailRun] = {}


@pytest.fixture(scope="module")
def mail_run(tmp_path_factory):
    def get(name: str) -> MailRun:
        if name not in _runs:
            _runs[name] = MailRun(tmp_path_factory.mktemp(f"mail-{name}"), KEY_SETS[name])
        return _runs[name]
    return get


def signatures(message: bytes) -> list[dict[str, str]]:
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    found = []
    for value in parsed.get_all("DKIM-Signature") or []:
        tags = {}
        for part in re.sub(r"\s+", "", value).split(";"):
            if "=" in part:
                key, _, tag_value = part.partition("=")
                tags[key] = tag_value
        found.append(tags)
    return found


def verify_all(run: MailRun, message: bytes) -> list[bool]:
    """dkimpy's verdict on each signature of the message."""
    checker = dkim.DKIM(message)
    verdicts = []
    for index in range(len(signatures(message))):
        try:
            verdicts.append(checker.verify(idx=index, dnsfunc=run.dns))
        except dkim.ValidationError:
            verdicts.append(False)  # dkimpy raises on a body hash that does not match
    return verdicts


@pytest.mark.parametrize("key_set", ["rsa", "ed25519", "both"])
def test_every_mail_kind_carries_one_valid_signature_per_key(mail_run, key_set):
    run = mail_run(key_set)
    algorithms = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}
    for kind, message in run.mails.items():
        found = signatures(message)
        assert sorted(s["a"] for s in found) == sorted(algorithms[k] for k in KEY_SETS[key_set]), f"{kind}: {found}"
        for tags in found:
            assert tags["d"] == DOMAIN and tags["c"] == "relaxed/relaxed", f"{kind}: {tags}"
            names = tags["h"].lower().split(":")
            present = [n for n in REQUIRED if n.encode() in message.lower().split(b"\r\n\r\n")[0]]
            assert set(present) <= set(names), f"{kind}: h= {names} misses some of {present}"
            assert names.count("from") == 2 and names.count("subject") == 2, f"{kind}: {names}"
        assert verify_all(run, message) == [True] * len(found), f"{kind} did not verify:\n{message.decode(errors='replace')[:3000]}"


def test_course_mails_sign_their_list_headers(mail_run):
    run = mail_run("rsa")
    for kind in ["announcement-ru", "announcement-en", "confirmation-ru", "confirmation-en"]:
        names = signatures(run.mails[kind])[0]["h"].lower().split(":")
        assert {"list-id", "list-unsubscribe", "list-unsubscribe-post"} <= set(names), names


def test_announcements_name_the_course_in_list_id(mail_run):
    run = mail_run("none")
    for kind in ["announcement-ru", "announcement-en"]:
        parsed = email.message_from_bytes(run.mails[kind], policy=email.policy.default)
        # The course's title as the subject shows it, between «» or “”.
        title = re.search(r"[«“](.+?)[»”]", str(parsed["Subject"])).group(1)
        assert str(parsed["List-Id"]) in (f'"{title}" <negotiation.waitlist.school.example>',
                                          f"{title} <negotiation.waitlist.school.example>"), parsed["List-Id"]
    raw = run.mails["announcement-ru"].split(b"\r\n\r\n")[0]
    assert re.search(rb"\r\nList-Id: =\?utf-8\?B\?[^\r]*(\r\n [^\r]*)*<negotiation\.waitlist\.school\.example>\r\n", raw), raw


@pytest.mark.parametrize("key_set", ["rsa", "ed25519"])
def test_one_changed_byte_of_a_signed_header_or_the_body_breaks_the_signature(mail_run, key_set):
    run = mail_run(key_set)
    for kind, message in run.mails.items():
        head, _, body = message.partition(b"\r\n\r\n")
        subject = re.search(rb"\r\nSubject: (.)", head)
        changed_header = message[:subject.start(1)] + bytes([subject.group(1)[0] ^ 0x01]) + message[subject.end(1):]
        position = len(head) + 4 + len(body) // 2
        while message[position:position + 1] in (b"\r", b"\n", b" ", b"\t", b"="):
            position += 1
        changed_body = message[:position] + bytes([message[position] ^ 0x01]) + message[position + 1:]
        assert verify_all(run, message) == [True], kind
        assert verify_all(run, changed_header) == [False], f"{kind}: a changed Subject still verifies"
        assert verify_all(run, changed_body) == [False], f"{kind}: a changed body still verifies"


def test_dkim_record_publishes_the_public_keys_the_verifier_used(mail_run):
    run = mail_run("both")
    lines = run.run_cli("dkim-record").splitlines()
    assert len(lines) == 2, lines
    for line in lines:
        match = re.fullmatch(r'(\S+) IN TXT ((?:"[^"]*" ?)+)', line)
        assert match, line
        strings = re.findall(r'"([^"]*)"', match.group(2))
        assert all(len(s.encode()) <= 255 for s in strings), strings
        assert run.records[match.group(1).encode()] == "".join(strings).encode(), line


def test_an_existing_file_is_never_overwritten_by_dkim_keygen(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text("precious\n")
    result = subprocess.run([str(waitlist_binary()), "dkim-keygen", "--type", "ed25519", str(path)], capture_output=True, text=True)
    assert result.returncode == 64, result
    assert "already exists" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert path.read_text() == "precious\n"


def test_spamassassin_scores_every_mail_kind_at_zero_or_below_without_a_signature(mail_run):
    run = mail_run("none")
    failures = []
    for kind, message in run.mails.items():
        result = subprocess.run(["spamassassin", "-L", "-t"], input=message, capture_output=True, timeout=120)
        report = result.stdout.decode(errors="replace")
        score = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", report, re.MULTILINE)
        assert score, f"{kind}: no score in spamassassin's report:\n{report[:2000]}"
        if float(score.group(1)) > 0.0:
            rules = report[report.find("Content analysis details"):]
            failures.append(f"{kind} scores {score.group(1)}:\n{rules}")
    assert not failures, "\n\n".join(failures)
