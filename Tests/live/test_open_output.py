"""`waitlist open` with its output in a pipe (`| tee open.log`, a log collector, a script waiting
for the line): the "announcements queued" line arrives as soon as queuing ends, not when the
delivery that follows ends, which may take hours with a slow relay or a long list.
"""

import os
import select
import socket
import sqlite3
import subprocess

from conftest import waitlist_binary


def test_open_tells_a_pipe_what_it_queued_while_delivery_still_runs(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WAITLIST_")} | {
        "WAITLIST_DATABASE": str(tmp_path / "w.sqlite"), "WAITLIST_MAIL_DIR": str(tmp_path / "mail"),
    }
    # The first run makes the database and its course.
    subprocess.run([str(waitlist_binary()), "status"], env=environment, check=True, capture_output=True, timeout=60)
    with sqlite3.connect(tmp_path / "w.sqlite", timeout=30) as db:
        db.executemany(
            "INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt, confirmedAt) "
            "VALUES (1, ?, ?, 'ru', 'confirmed', '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000')",
            ((f"c{i}@example.com", f"c{i}@example.com") for i in range(10)))
    # A relay that takes the connection and never greets: each delivery waits the transport's 10 s
    # for a greeting, so `open` runs on for at least that long after queuing.
    with socket.socket() as relay:
        relay.bind(("127.0.0.1", 0))
        relay.listen(16)
        environment["WAITLIST_SMTP_URL"] = f"smtp://127.0.0.1:{relay.getsockname()[1]}"
        opening = subprocess.Popen(
            [str(waitlist_binary()), "open", "--date", "2027-03-15", "--url", "https://school.example/enrol", "--yes"],
            env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            readable, _, _ = select.select([opening.stdout], [], [], 5)
            assert readable, "open's pipe got nothing within 5 s of its start"
            line = opening.stdout.readline().decode()
            assert "10 announcements queued" in line, line
            assert opening.poll() is None
        finally:
            opening.kill()
            opening.wait()
