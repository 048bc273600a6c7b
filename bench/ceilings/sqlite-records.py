#!/usr/bin/env python3
"""What the sender's database work costs in SQLite alone, without Swift or GRDB around it.

Replays, on a copy of a database that `waitlist open` has sent from (all its outbox rows are
queued again first), the writes the sender makes for each message: the mark-sent UPDATE and the
INSERT of an unsubscribe token's SHA-256, in WAL mode, grouped N messages to a transaction as the
sender's record transactions group them, and prints wall-clock and CPU microseconds per message.

    python3 bench/ceilings/sqlite-records.py path/to/db.sqlite [messages]

bench/README.md has the numbers.
"""
import hashlib
import os
import shutil
import sqlite3
import sys
import tempfile
import time

STAMP = "2026-11-29 04:00:00.000"


def run(source: str, label: str, messages: int, group: int, tokens=True, synchronous="FULL", opening_index_with_state=True):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "copy.sqlite")
        with sqlite3.connect(source) as original, sqlite3.connect(path) as copy:
            original.backup(copy)
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("UPDATE outbox SET state = 'queued', sentAt = NULL")
        if not opening_index_with_state:
            db.execute("DROP INDEX outbox_by_opening")
            db.execute("CREATE INDEX outbox_by_opening ON outbox(openingId)")
        rows = db.execute("SELECT id, subscriberId FROM outbox ORDER BY id LIMIT ?", (messages,)).fetchall()
        cpu, wall = time.process_time(), time.time()
        for start in range(0, len(rows), group):
            db.execute("BEGIN IMMEDIATE")
            for outbox_id, subscriber_id in rows[start:start + group]:
                db.execute("UPDATE outbox SET state = 'sent', sentAt = ?, leaseOwner = NULL, leaseExpiresAt = NULL, "
                           "lastError = NULL WHERE id = ?", (STAMP, outbox_id))
                if tokens:
                    db.execute("INSERT INTO token (subscriberId, purpose, hash, createdAt, expiresAt) VALUES (?, ?, ?, ?, ?)",
                               (subscriber_id, "unsubscribe", hashlib.sha256(os.urandom(32)).digest(), STAMP, None))
            db.execute("COMMIT")
        wall, cpu = time.time() - wall, time.process_time() - cpu
        db.close()
    print(f"| {label} | {wall / len(rows) * 1e6:.0f} | {cpu / len(rows) * 1e6:.0f} |", flush=True)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 64
    source, messages = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    print("| per message, as the sender writes them | µs wall | µs CPU |\n| --- | ---: | ---: |")
    run(source, "mark + token, 1 message a transaction", messages, 1)
    run(source, "mark + token, 2 messages a transaction", messages, 2)
    run(source, "mark + token, 8 messages a transaction", messages, 8)
    run(source, "mark only, 2 messages a transaction", messages, 2, tokens=False)
    run(source, "mark + token, 2 a transaction, `outbox_by_opening` without `state`", messages, 2, opening_index_with_state=False)
    run(source, "mark + token, 2 a transaction, synchronous=NORMAL", messages, 2, synchronous="NORMAL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
