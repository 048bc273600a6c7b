"""Storage tests against a running `waitlist serve`.

- Another process (Python's sqlite3) holds the database's write lock: the course page and
  `/healthz` still answer `200`, a signup gets `503` with `Retry-After` within a few seconds, and
  once the lock is let go the same signup is accepted (`202`) and written once.
- `kill -9` of the server right after a run of `202`s: every accepted signup is in the database,
  with its confirmation queued or sent.
"""

import json
import signal
import sqlite3
import threading
import time

from conftest import Server


def subscribe(server, email: str, timeout: float = 30):
    body = json.dumps({"email": email}).encode()
    return server.request("POST", "/api/subscribe", body=body, headers={"Content-Type": "application/json"}, timeout=timeout)


def test_a_foreign_write_lock_gets_a_bounded_503_and_pages_still_answer(start_server):
    server = start_server(rate_limit="off")
    holder = sqlite3.connect(str(server.directory / "w.sqlite"), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert server.request("GET", "/courses/negotiation")[0] == 200
        assert server.health() == (200, b"ok\n")

        started = time.monotonic()
        status, headers, body = subscribe(server, "ann@example.com")
        waited = time.monotonic() - started
        assert status == 503, body
        assert int(headers["Retry-After"]) > 0
        assert json.loads(body)["error"] == "unavailable"
        assert waited < 15, f"the signup waited {waited:.1f} s"

        status, body = server.health()
        assert status == 503
        assert b"write" in body
        assert server.request("GET", "/courses/negotiation")[0] == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert subscribe(server, "ann@example.com")[0] == 202
    assert server.health() == (200, b"ok\n")
    with sqlite3.connect(str(server.directory / "w.sqlite")) as reader:
        assert reader.execute("SELECT count(*) FROM subscriber WHERE email = 'ann@example.com'").fetchone()[0] == 1


def test_kill_9_right_after_202s_loses_no_signup(tmp_path):
    server = Server(tmp_path, "off")
    accepted: list[str] = []
    lock = threading.Lock()

    def sign_up(worker: int) -> None:
        for index in range(40):
            email = f"p{worker}-{index}@example.com"
            if subscribe(server, email)[0] == 202:
                with lock:
                    accepted.append(email)

    try:
        threads = [threading.Thread(target=sign_up, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Right after the last 202: no chance to shut down cleanly.
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    finally:
        server.stop()

    assert len(accepted) == 320
    with sqlite3.connect(str(tmp_path / "w.sqlite")) as reader:
        stored = {row[0] for row in reader.execute("SELECT email FROM subscriber")}
        queued = reader.execute("SELECT count(*) FROM outbox WHERE kind = 'confirmation'").fetchone()[0]
    assert set(accepted) <= stored
    assert queued >= len(accepted)
