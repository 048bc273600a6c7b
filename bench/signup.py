#!/usr/bin/env python3
"""The driver of bench/signup (read that script's header and bench/README.md).

Serves $WAITLIST_BIN on a free 127.0.0.1 port with a fresh database in a temporary folder, the rate
limit off and the relay pointed at a closed port (the worker's confirmations fail and wait for a
retry: what is measured is the signup, not the mail), then:

1. `wrk --latency` on GET /healthz and on POST /api/subscribe (bench/signup.lua: a new address per
   request) at 1, 16 and 64 connections, 2 threads, BENCH_SECONDS each: requests a second, p50, p99;
   then POST /api/subscribe paced at about half the higher signup rate (each connection waits 10 ms
   after an answer; wrk's delay(): a closed loop with a pause, not a constant-rate open loop), with a
   synced single-row commit every 50 ms beside it on the same disk (the slowest, and how many took
   over 20 ms: the disk's stalls during that run).
2. Single-row `synchronous=FULL` commits in WAL mode on the same disk for BENCH_SECONDS, Python's
   sqlite3: how many a second, the slowest, and how many took over 20 ms (the disk's own stalls:
   a stall delays every signup waiting for that commit, so it bounds the signups' p99).
3. BENCH_RECIPIENTS confirmed subscribers written straight into the database, then `waitlist open`
   while 16 keep-alive clients sign up: the signup p50/p99/max while `open` queues (from its start
   to its "announcements queued" line), and the same watch of the disk through that whole step.
"""

import http.client
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BINARY = Path(os.environ["WAITLIST_BIN"])
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
RECIPIENTS = int(os.environ.get("BENCH_RECIPIENTS", "1000000"))
# The paced run's wait between a connection's answer and its next request (whole milliseconds).
PACE_MS = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, connections: int, script: list[str], label: list[str] = [], pace_ms: int | None = None) -> dict:
    """One wrk run: requests a second, p50 and p99 in ms, and the answers that were not 202.
    With `pace_ms`, each connection waits that long after an answer before its next request."""
    threads = min(2, connections)
    environment = os.environ | ({"BENCH_PACE_MS": str(pace_ms)} if pace_ms is not None else {})
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{SECONDS}s", "--latency", *script, url, *label],
        capture_output=True, text=True, timeout=SECONDS + 60, check=True, env=environment).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = milliseconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = milliseconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    refused = re.search(r"not202 (\d+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rate": rate, "p50": p50, "p99": p99, "refused": int(refused.group(1)) if refused else (int(errors.group(1)) if errors else 0)}


def synced_table(path: Path) -> sqlite3.Connection:
    """A connection to `path` (WAL, synchronous=FULL, autocommit) with a table `t` to insert into."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    return db


def single_commits(folder: Path, seconds: float) -> dict:
    """Single-row synchronous=FULL commits, WAL, one connection: how many a second, and the disk's
    own stalls (the slowest commit, and how many took over 20 ms), which bound every p99 above."""
    with synced_table(folder / "commits.sqlite") as db:
        count, slowest, stalls, started = 0, 0.0, 0, time.perf_counter()
        while (begun := time.perf_counter()) - started < seconds:
            db.execute("BEGIN")
            db.execute("INSERT INTO t (v) VALUES (?)", (f"row{count}",))
            db.execute("COMMIT")
            took = time.perf_counter() - begun
            slowest = max(slowest, took)
            stalls += took > 0.020
            count += 1
        return {"per_second": count / (time.perf_counter() - started), "max_ms": slowest * 1000, "over_20ms": stalls}


class DiskWatch:
    """While a run lasts, one single-row synchronous=FULL commit every 50 ms on a file of its own in
    the same folder: the disk's stalls at the same moments as the run's signups (a handful of syncs
    a second beside the server's thousands), so a p99 over the target can be told from the disk's."""

    def __init__(self, folder: Path):
        self.path = folder / "disk-watch.sqlite"
        self.stop = threading.Event()
        self.times: list[float] = []
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "DiskWatch":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _watch(self) -> None:
        with synced_table(self.path) as db:
            while not self.stop.wait(0.05):
                begun = time.perf_counter()
                db.execute("INSERT INTO t (v) VALUES ('watch')")
                self.times.append(time.perf_counter() - begun)

    def summary(self) -> dict:
        return {"disk_commits": len(self.times), "disk_max_ms": round(max(self.times, default=0) * 1000, 1),
                "disk_over_20ms": sum(t > 0.020 for t in self.times)}


def signups_while_opening(port: int, database: Path, environment: dict) -> dict:
    """Signup latencies of 16 keep-alive clients while `open` queues RECIPIENTS announcements."""
    with sqlite3.connect(database, timeout=60) as db:
        now = "2026-01-01 00:00:00.000"
        db.executemany(
            "INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt, confirmedAt) "
            "VALUES (1, ?, ?, 'ru', 'confirmed', ?, ?)",
            ((f"r{i}@example.com", f"r{i}@example.com", now, now) for i in range(RECIPIENTS)))
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        index = 0
        while not stop.is_set():
            index += 1
            body = json.dumps({"email": f"o{number}-{index}@example.com"}).encode()
            started = time.perf_counter()
            connection.request("POST", "/api/subscribe", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            ended = time.perf_counter()
            if response.status != 202:
                raise SystemExit(f"signup answered {response.status} while open queued")
            with lock:
                samples.append((started, (ended - started) * 1000))

    clients = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(16)]
    for thread in clients:
        thread.start()
    time.sleep(2)
    opened = time.perf_counter()
    process = subprocess.Popen(
        [str(BINARY), "open", "--date", "2027-03-15", "--url", "https://school.example/enrol", "--yes"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    queued = time.perf_counter()
    process.kill()
    process.wait()
    time.sleep(1)
    stop.set()
    for thread in clients:
        thread.join(timeout=30)
    during = sorted(ms for started, ms in samples if opened <= started <= queued)
    if not during:
        raise SystemExit("no signup was answered while open queued")
    return {
        "queue_seconds": queued - opened, "open_said": line.strip(), "signups": len(during),
        "p50": statistics.median(during), "p99": during[int(len(during) * 0.99) - 1] if len(during) >= 100 else during[-1],
        "max": during[-1],
    }


def main() -> None:
    # What an earlier run (or anything else) left for the kernel to write back would otherwise be
    # written during this one, behind its signups' syncs.
    os.sync()
    folder = Path(tempfile.mkdtemp(prefix="waitlist-signup-bench-"))
    database = folder / "w.sqlite"
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WAITLIST_")} | {
        "WAITLIST_DATABASE": str(database), "WAITLIST_MAIL_DIR": str(folder / "mail"), "WAITLIST_LOG_LEVEL": "error",
        "WAITLIST_SIGNUP_RATE_LIMIT": "off", "WAITLIST_BASE_URL": f"http://127.0.0.1:{port}",
        "WAITLIST_SMTP_URL": f"smtp://127.0.0.1:{free_port()}",
    }
    server = subprocess.Popen([str(BINARY), "serve", "--port", str(port)], env=environment, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict = {"machine": f"{os.cpu_count()} cores", "seconds_per_run": SECONDS}
    try:
        for _ in range(200):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        for connections in (1, 16, 64):
            results[f"healthz_c{connections}"] = wrk(f"{base}/healthz", connections, [])
            print(f"GET /healthz      c={connections:<3} {results[f'healthz_c{connections}']}", flush=True)
        for connections in (1, 16, 64):
            script = ["-s", str(BENCH / "signup.lua")]
            results[f"signup_c{connections}"] = wrk(f"{base}/api/subscribe", connections, script, ["--", f"c{connections}"])
            print(f"POST /api/subscribe c={connections:<3} {results[f'signup_c{connections}']}", flush=True)
        # Half the peak, paced: each connection waits PACE_MS after an answer, and there are as
        # many connections as make half the peak at the latency seen with 16.
        peak = max(results["signup_c16"]["rate"], results["signup_c64"]["rate"])
        connections = max(1, round(peak / 2 * (PACE_MS + results["signup_c16"]["p50"]) / 1000))
        with DiskWatch(folder) as disk:
            half = wrk(f"{base}/api/subscribe", connections, script, ["--", "half"], pace_ms=PACE_MS)
        results["signup_half_peak"] = half | {"connections": connections, "target_rate": peak / 2} | disk.summary()
        print(f"POST /api/subscribe at half the peak ({peak / 2:.0f}/s): {results['signup_half_peak']}", flush=True)
        commits = single_commits(folder, SECONDS)
        results["single_commits_per_second"] = commits["per_second"]
        results["single_commits_stalls"] = {"max_ms": commits["max_ms"], "over_20ms": commits["over_20ms"]}
        print(f"single-row synchronous=FULL commits/s: {commits['per_second']:.0f}; slowest {commits['max_ms']:.1f} ms,"
              f" {commits['over_20ms']} over 20 ms in {SECONDS} s", flush=True)
        with DiskWatch(folder) as disk:
            results["while_open"] = signups_while_opening(port, database, environment)
        results["while_open"] |= disk.summary()
        print(f"signups while open queues {RECIPIENTS}: {results['while_open']}", flush=True)
        results["ratio_signup_to_healthz_c64"] = results["signup_c64"]["rate"] / results["healthz_c64"]["rate"]
        print(json.dumps(results, indent=2))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(["rm", "-rf", str(folder)])


if __name__ == "__main__":
    main()
