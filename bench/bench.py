#!/usr/bin/env python3
"""The waitlist's fan-out benchmark; bench/run builds the binary and fetches the tools, then runs this.

What it measures, all on 127.0.0.1, against one postfix smtp-sink for the whole run:

* the fan-out rate: `waitlist open` with N confirmed subscribers (100,000 at full size) delivering
  into smtp-sink, messages per second of the sending part, next to postfix's smtp-source sending
  N copies of the same announcement into the same sink with as many sessions as the sender has lanes
  (WAITLIST_SEND_CONCURRENCY, default 4), reusing each connection (-d) as the sender does; smtp-source
  runs once before and once after the waitlist;
* the time to queue: from the start of `waitlist open` to its "… announcements queued." line (the
  one INSERT…SELECT transaction and what comes before it), for each list size;
* peak memory: the maximum resident set size (wait4's ru_maxrss, the number `/usr/bin/time -v`
  reports) of that `waitlist open` process, for each list size. The largest list is sent for a
  bounded time (--send-window seconds) and then stopped with SIGINT, as an operator would with
  Ctrl-C; the smaller ones are sent in full.

Seeding (confirmed subscribers inserted straight into the SQLite file in one transaction) is not
measured. Every process it starts is stopped when it ends, also on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import pty
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DATE = "2027-03-15"
ENROL_URL = "https://school.example/enrol"
MAIL_FROM = "waitlist@localhost"
HARD_LIMIT = 1500  # seconds any one measured process may take before it is killed

SIZES = {
    # fan-out size, list sizes for queue time and memory, which of them is sent for a bounded time
    "full": {"fanout": 100_000, "lists": [10_000, 100_000, 1_000_000], "bounded": {1_000_000}},
    "quick": {"fanout": 10_000, "lists": [1_000, 10_000], "bounded": set()},
}

started: list[subprocess.Popen] = []


def log(message: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stop_all() -> None:
    """Stops every process this script started that is still running."""
    for proc in started:
        if proc.returncode is None:
            try:
                proc.terminate()
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except (ProcessLookupError, ChildProcessError):
                pass


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds_of(pid: int) -> float:
    """User plus system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (every state but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Sink:
    """postfix's smtp-sink on 127.0.0.1, counting what it receives (`-c`) into a file."""

    def __init__(self, tools: Path, workdir: Path):
        self.tools = tools
        self.port = free_port()
        self.counter_file = workdir / "smtp-sink.counters"
        self.stderr_file = workdir / "smtp-sink.stderr"
        args = [str(tools / "usr/sbin/smtp-sink"), "-c"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        args += [f"127.0.0.1:{self.port}", "1024"]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=open(self.counter_file, "wb"), stderr=open(self.stderr_file, "wb"),
            env=tool_env(tools))
        started.append(self.proc)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"smtp-sink exited at once: {self.stderr_file.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.recv(100)  # the greeting; this probe counts as a session, not a message
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("smtp-sink did not start listening within 10 s")
                time.sleep(0.05)

    def messages(self) -> int:
        """Messages received so far (smtp-sink updates its counters line at every '.')."""
        with open(self.counter_file, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 400))
            found = re.findall(rb"mesg=(\d+)", f.read())
        return int(found[-1]) if found else 0

    def wait_for(self, count: int, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while self.messages() < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages()

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


def tool_env(tools: Path) -> dict:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(tools / "usr/lib/postfix")
    return env


def waitlist_env(database: Path, smtp_url: str | None, mail_dir: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAITLIST_")}
    env["WAITLIST_DATABASE"] = str(database)
    if smtp_url:
        env["WAITLIST_SMTP_URL"] = smtp_url
    if mail_dir:
        env["WAITLIST_MAIL_DIR"] = str(mail_dir)
    # The settings the sender is measured with: the defaults unless the caller set them.
    env["WAITLIST_SEND_CONCURRENCY"] = os.environ.get("WAITLIST_SEND_CONCURRENCY", "4")
    if "WAITLIST_SEND_RATE" in os.environ:
        env["WAITLIST_SEND_RATE"] = os.environ["WAITLIST_SEND_RATE"]
    if DKIM_KEYS:
        env["WAITLIST_DKIM_KEYS"] = DKIM_KEYS
    return env


# `SELECTOR:PATH,...` of the keys every run signs with (`--dkim`); empty: no signing.
DKIM_KEYS = ""


def make_dkim_keys(binary: Path, choice: str, directory: Path) -> str:
    """New keys made by `waitlist dkim-keygen` for `--dkim rsa|ed25519|both`, as WAITLIST_DKIM_KEYS."""
    entries = []
    for key_type in (["rsa", "ed25519"] if choice == "both" else [choice]):
        path = directory / f"dkim-{key_type}.pem"
        subprocess.run([str(binary), "dkim-keygen", "--type", key_type, str(path)], check=True, stdout=subprocess.DEVNULL)
        entries.append(f"bench-{key_type}:{path}")
    return ",".join(entries)


def email(i: int) -> str:
    return f"subscriber{i:07d}@example.org"


def create_database(binary: Path, path: Path, subscribers: int) -> float:
    """A fresh, migrated database (by `waitlist status`) with `subscribers` confirmed subscribers of
    course 1, inserted in one transaction. Returns the seconds the insert took (not a measurement)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    subprocess.run([str(binary), "status"], env=waitlist_env(path, None), check=True, stdout=subprocess.DEVNULL)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    begin = time.monotonic()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO subscriber (courseId, email, emailKey, language, status, createdAt, confirmedAt)"
        " VALUES (1, ?, ?, 'ru', 'confirmed', ?, ?)",
        ((email(i), email(i).lower(), stamp, stamp) for i in range(1, subscribers + 1)))
    con.execute("COMMIT")
    con.close()
    return time.monotonic() - begin


def status(binary: Path, database: Path) -> dict:
    out = subprocess.run([str(binary), "status", "--json"], env=waitlist_env(database, None), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)[0]


class OpenRun:
    """One `waitlist open --yes` process: its stdout on a pseudo-terminal (so the "queued" line
    arrives when it is printed, not when the process exits), its stderr in a file, its exit status
    and rusage from wait4."""

    def __init__(self, binary: Path, env: dict, log_prefix: Path):
        self.stdout_lines: list[tuple[float, str]] = []
        self.queued_at: float | None = None
        self.queued_event = threading.Event()
        self.exited_event = threading.Event()
        self.exit_status: int | None = None
        self.rusage = None
        self.exited_at: float | None = None
        master, slave = pty.openpty()
        self.stderr_path = Path(f"{log_prefix}.stderr")
        self.stdout_path = Path(f"{log_prefix}.stdout")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            [str(binary), "open", "--date", DATE, "--url", ENROL_URL, "--yes"],
            stdin=subprocess.DEVNULL, stdout=slave, stderr=open(self.stderr_path, "wb"), env=env)
        started.append(self.proc)
        os.close(slave)
        self._master = master
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        with open(self.stdout_path, "wb") as copy:
            while True:
                try:
                    chunk = os.read(self._master, 4096)
                except OSError:  # EIO: the process closed the terminal
                    break
                if not chunk:
                    break
                now = time.monotonic()
                copy.write(chunk)
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    text = line.decode("utf-8", "replace").rstrip("\r")
                    self.stdout_lines.append((now, text))
                    if self.queued_at is None and "announcements queued" in text:
                        self.queued_at = now
                        self.queued_event.set()
        os.close(self._master)

    def _wait(self) -> None:
        try:
            _, status, rusage = os.wait4(self.proc.pid, 0)
        except ChildProcessError:  # reaped by stop_all() while the script is being stopped
            return
        self.exited_at = time.monotonic()
        self.exit_status = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.exit_status
        self.rusage = rusage
        self.exited_event.set()

    def wait_queued(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.queued_event.wait(0.05):
            if self.exited_event.is_set() or time.monotonic() > deadline:
                return self.queued_event.is_set()
        return True

    def wait_exit(self, timeout: float) -> bool:
        if not self.exited_event.wait(timeout):
            self.proc.kill()
            self.exited_event.wait(10)
            return False
        time.sleep(0.05)  # let the reader take the last lines
        return True

    def interrupt(self) -> None:
        if not self.exited_event.is_set():
            self.proc.send_signal(signal.SIGINT)

    def delivered(self) -> int | None:
        return self._number(r"^Delivered (\d+)")

    def queued_count(self) -> int | None:
        return self._number(r"; (\d+) announcements queued")

    def _number(self, pattern: str) -> int | None:
        """The number `pattern` captures in the first stdout line it matches."""
        for _, text in self.stdout_lines:
            found = re.search(pattern, text)
            if found:
                return int(found.group(1))
        return None


def measure_open(binary: Path, database: Path, sink: Sink, logs: Path, label: str, send_window: float | None) -> dict:
    """Runs `waitlist open` against the sink; with send_window, stops it with SIGINT that many
    seconds after the announcements are queued."""
    before_sink = sink.messages()
    sink_cpu_before = sink.cpu_seconds()
    busy_before = machine_busy_seconds()
    run = OpenRun(binary, waitlist_env(database, f"smtp://127.0.0.1:{sink.port}"), logs / f"open-{label}")
    if not run.wait_queued(HARD_LIMIT):
        run.proc.kill()
        run.wait_exit(10)
        raise SystemExit(f"waitlist open ({label}) printed no 'announcements queued' line; see {run.stderr_path}")
    if send_window is not None:
        run.exited_event.wait(send_window)
        run.interrupt()
    if not run.wait_exit(HARD_LIMIT):
        raise SystemExit(f"waitlist open ({label}) did not finish within {HARD_LIMIT} s and was killed")
    busy = machine_busy_seconds() - busy_before
    delivered = run.delivered() or 0
    received = sink.wait_for(before_sink + delivered) - before_sink
    send_seconds = run.exited_at - run.queued_at
    final = status(binary, database)
    result = {
        "label": label,
        "queued": run.queued_count(),
        "queue_seconds": run.queued_at - run.start,
        "send_seconds": send_seconds,
        "delivered": delivered,
        "sink_received": received,
        "sent_in_database": final["mailSent"],
        "left_queued": final["mailQueued"],
        "rate": delivered / send_seconds if send_seconds > 0 else None,
        "peak_rss_kib": run.rusage.ru_maxrss,
        "cpu_seconds": run.rusage.ru_utime + run.rusage.ru_stime,
        "sink_cpu_seconds": sink.cpu_seconds() - sink_cpu_before,
        "other_cpu_seconds": busy - (run.rusage.ru_utime + run.rusage.ru_stime) - (sink.cpu_seconds() - sink_cpu_before),
        "exit_status": run.exit_status,
        "stopped_after_seconds": send_window,
        "wall_seconds": run.exited_at - run.start,
    }
    expected_exit = 75 if send_window is not None and result["left_queued"] > 0 else 0
    problems = []
    if run.exit_status != expected_exit:
        problems.append(f"exit status {run.exit_status}, expected {expected_exit}")
    if received != delivered:
        problems.append(f"the sink received {received} messages but the sender reported {delivered}")
    if final["mailSent"] != delivered:
        problems.append(f"the database records {final['mailSent']} sent but the sender reported {delivered}")
    if send_window is None and delivered != result["queued"]:
        problems.append(f"{result['queued']} queued but {delivered} delivered")
    result["problems"] = problems
    for problem in problems:
        log(f"PROBLEM ({label}): {problem}")
    return result


def measure_source(tools: Path, sink: Sink, message: Path, count: int, sessions: int, label: str, logs: Path) -> dict:
    """postfix's smtp-source: `count` copies of `message`, `sessions` parallel sessions, each
    connection reused for its share of the messages (-d), as the waitlist's lanes reuse theirs."""
    before_sink = sink.messages()
    sink_cpu_before = sink.cpu_seconds()
    args = [str(tools / "usr/sbin/smtp-source"), "-s", str(sessions), "-d", "-m", str(count), "-F", str(message),
            "-f", MAIL_FROM, "-t", email(1), "-M", "localhost", f"127.0.0.1:{sink.port}"]
    output_path = logs / f"smtp-source-{label}.out"
    busy_before = machine_busy_seconds()
    begin = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=open(output_path, "wb"), stderr=subprocess.STDOUT,
                            env=tool_env(tools))
    started.append(proc)
    outcome: dict = {}

    def wait() -> None:
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        except ChildProcessError:  # reaped by stop_all() while the script is being stopped
            return
        outcome.update(end=time.monotonic(), status=os.waitstatus_to_exitcode(status), rusage=rusage)
        proc.returncode = outcome["status"]

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(HARD_LIMIT)
    if not outcome:
        proc.kill()
        raise SystemExit(f"smtp-source did not finish within {HARD_LIMIT} s")
    seconds = outcome["end"] - begin
    busy = machine_busy_seconds() - busy_before
    received = sink.wait_for(before_sink + count) - before_sink
    cpu = outcome["rusage"].ru_utime + outcome["rusage"].ru_stime
    sink_cpu = sink.cpu_seconds() - sink_cpu_before
    result = {
        "label": label, "messages": count, "sessions": sessions, "seconds": seconds, "rate": count / seconds,
        "sink_received": received, "exit_status": proc.returncode, "cpu_seconds": cpu, "sink_cpu_seconds": sink_cpu,
        "other_cpu_seconds": busy - cpu - sink_cpu, "peak_rss_kib": outcome["rusage"].ru_maxrss,
        "args": " ".join(args[1:]),
    }
    result["problems"] = []
    if proc.returncode != 0 or received != count:
        result["problems"].append(f"smtp-source ({label}) exited {proc.returncode}, the sink received {received} of {count}")
        log(f"PROBLEM: {result['problems'][-1]}")
    return result


def sample_message(binary: Path, workdir: Path) -> tuple[Path, int]:
    """The announcement exactly as the waitlist renders it (through its file transport, for one
    subscriber with an address as long as the benchmark's), with LF line ends for smtp-source -F.
    Returns the file and the message's size on the wire (CRLF line ends)."""
    database = workdir / "sample.sqlite"
    mail_dir = workdir / "sample-mail"
    shutil.rmtree(mail_dir, ignore_errors=True)
    create_database(binary, database, 1)
    subprocess.run([str(binary), "open", "--date", DATE, "--url", ENROL_URL, "--yes"],
                   env=waitlist_env(database, None, mail_dir), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    files = sorted(mail_dir.glob("*.eml"))
    if len(files) != 1:
        raise SystemExit(f"expected one announcement in {mail_dir}, found {len(files)}")
    raw = files[0].read_bytes()
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    message = workdir / "announcement.txt"
    message.write_bytes(b"\n".join(lines) + b"\n")
    wire_size = sum(len(line) + 2 for line in lines)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    return message, wire_size


def machine(binary: Path) -> dict:
    def run(*args):
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    swift = run("swift", "--version").splitlines()
    repo = binary.resolve().parent
    while repo != repo.parent and not (repo / ".git").exists():
        repo = repo.parent
    commit = run("git", "-C", str(repo), "describe", "--always", "--dirty") if (repo / ".git").exists() else "unknown"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": run("nproc"),
        "memory": run("free", "-h").splitlines()[1].split()[1] if run("free", "-h") else "unknown",
        "cpu": cpu,
        "kernel": f"{platform.system()} {platform.release()}",
        "swift": swift[0] if swift else "unknown",
        "commit": commit,
        "binary": str(binary),
        # The checkout's commit says nothing of a binary built before it: its own time tells.
        "binary_built": dt.datetime.fromtimestamp(binary.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def report(results: dict) -> str:
    m = results["machine"]
    fan = results["fanout"]
    sources = results["smtp_source"]
    source_rate = sum(s["rate"] for s in sources) / len(sources)
    ratio = fan["rate"] / source_rate
    source_args = re.sub(r"-F \S+", "-F announcement.txt", sources[0]["args"])
    source_args = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", source_args)
    lines = [
        f"Machine: {m['nproc']} cores, {m['memory']} memory, {m['cpu']}, {m['kernel']}, {m['swift']}; "
        f"waitlist {m['commit']} (binary {m['binary']}, built {m.get('binary_built', 'unknown')}); {m['date']}; load average at start {' '.join(m['loadavg_start'])}, "
        f"at end {' '.join(results['loadavg_end'])}.",
        f"Announcement: {results['message_bytes']} bytes on the wire. WAITLIST_SEND_CONCURRENCY={results['concurrency']}. "
        f"DKIM: {results.get('dkim') or 'none'}. "
        f"smtp-source {source_args}",
        "",
        f"| fan-out of {fan['queued']:,} into smtp-sink | messages received | seconds | messages/s "
        f"| CPU s, sender | CPU s, smtp-sink | CPU s, rest of machine |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in sources:
        lines.append(f"| smtp-source, {s['sessions']} sessions, connections reused ({s['label']}) | {s['sink_received']:,} "
                     f"| {s['seconds']:.2f} | {s['rate']:,.0f} | {s['cpu_seconds']:.1f} | {s['sink_cpu_seconds']:.1f} "
                     f"| {s['other_cpu_seconds']:.1f} |")
    lines.append(f"| waitlist open, {results['concurrency']} lanes (the sending part) | {fan['sink_received']:,} | "
                 f"{fan['send_seconds']:.2f} | {fan['rate']:,.0f} | {fan['cpu_seconds']:.1f} (whole process) | "
                 f"{fan['sink_cpu_seconds']:.1f} | {fan['other_cpu_seconds']:.1f} |")
    lines += [
        "",
        f"waitlist / smtp-source (mean of {len(sources)}, {source_rate:,.0f}/s): {ratio:.2f}; the target is at least 0.50: "
        f"{'met' if ratio >= 0.5 else 'NOT met'}.",
        "",
        "| confirmed subscribers | time to queue | sent | peak RSS of `waitlist open` | how the send ended "
        "| CPU s, rest of machine |",
        "| ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in results["lists"]:
        how = (f"stopped with SIGINT {r['stopped_after_seconds']:.0f} s after queuing "
               f"({r['left_queued']:,} left queued, exit {r['exit_status']})"
               if r["stopped_after_seconds"] is not None else f"all sent, exit {r['exit_status']}")
        lines.append(f"| {r['queued']:,} | {r['queue_seconds']:.2f} s | {r['delivered']:,} in {r['send_seconds']:.1f} s "
                     f"({r['rate']:,.0f}/s) | {mib(r['peak_rss_kib'])} | {how} | {r['other_cpu_seconds']:.1f} |")
    rss = [r["peak_rss_kib"] for r in results["lists"]]
    lines += [
        "",
        f"Peak RSS, largest list / smallest: {max(rss) / min(rss):.2f}x for "
        f"{results['lists'][-1]['queued'] / results['lists'][0]['queued']:,.0f}x the subscribers.",
    ]
    problems = [p for r in [fan, *sources, *results["lists"]] for p in r["problems"]]
    lines.append("Checks: " + ("every message the sender reported sent was received by smtp-sink and recorded as sent "
                               "in the database; smtp-sink received every smtp-source message."
                               if not problems else "PROBLEMS: " + "; ".join(problems)))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--tools", type=Path, required=True, help="where postfix's .deb was unpacked")
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--send-window", type=float, default=60)
    parser.add_argument("--dkim", choices=["rsa", "ed25519", "both"], help="sign every message with new keys of this type")
    parser.add_argument("--render", action="store_true", help="only print the tables of RESULTS/results.json again")
    if "--render" in sys.argv:
        results_dir = Path(sys.argv[sys.argv.index("--results") + 1])
        print(report(json.loads((results_dir / "results.json").read_text())))
        return 0
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    plan = SIZES[args.size]
    concurrency = int(os.environ.get("WAITLIST_SEND_CONCURRENCY", "4"))
    args.results.mkdir(parents=True, exist_ok=True)
    binary = args.binary.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="work-", dir=args.results))
    results: dict = {"size": args.size, "concurrency": concurrency, "machine": machine(binary), "dkim": args.dkim}
    if args.dkim:
        global DKIM_KEYS
        DKIM_KEYS = make_dkim_keys(binary, args.dkim, workdir)
        log(f"Every message is DKIM-signed ({args.dkim}).")
    sink = None
    busy_before = machine_busy_seconds()
    time.sleep(3)
    others = (machine_busy_seconds() - busy_before) / 3
    if others > 0.1:
        log(f"Warning: other processes are using {others:.1f} of {os.cpu_count()} cores; the results will show it "
            "(the 'rest of machine' columns). A quiet machine gives steadier numbers.")
    try:
        message, results["message_bytes"] = sample_message(binary, workdir)
        log(f"The announcement is {results['message_bytes']} bytes on the wire.")

        databases = {}
        for n in sorted(set(plan["lists"]) | {plan["fanout"]}):
            databases[n] = workdir / f"list-{n}.sqlite"
            seconds = create_database(binary, databases[n], n)
            log(f"Seeded {n:,} confirmed subscribers in {seconds:.1f} s (not measured).")

        sink = Sink(args.tools, workdir)
        log(f"smtp-sink listens on 127.0.0.1:{sink.port}.")
        n = plan["fanout"]
        sources = [measure_source(args.tools, sink, message, n, concurrency, "before", workdir)]
        log(f"smtp-source: {n:,} messages at {sources[-1]['rate']:,.0f}/s.")
        fan = measure_open(binary, databases[n], sink, workdir, f"{n}", None)
        log(f"waitlist open: {fan['delivered']:,} messages at {fan['rate']:,.0f}/s after queuing in "
            f"{fan['queue_seconds']:.2f} s; peak RSS {mib(fan['peak_rss_kib'])}.")
        sources.append(measure_source(args.tools, sink, message, n, concurrency, "after", workdir))
        log(f"smtp-source: {n:,} messages at {sources[-1]['rate']:,.0f}/s.")
        results["fanout"] = fan
        results["smtp_source"] = sources

        lists = []
        for size in plan["lists"]:
            if size == n:
                lists.append(fan)
                continue
            window = args.send_window if size in plan["bounded"] else None
            lists.append(measure_open(binary, databases[size], sink, workdir, f"{size}", window))
            r = lists[-1]
            log(f"waitlist open with {size:,}: queued in {r['queue_seconds']:.2f} s, sent {r['delivered']:,} at "
                f"{r['rate']:,.0f}/s, peak RSS {mib(r['peak_rss_kib'])}.")
        results["lists"] = sorted(lists, key=lambda r: r["queued"])
        results["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    finally:
        if sink:
            sink.stop()
        stop_all()
        # Keep the logs; the databases are large and of no further use.
        for path in workdir.glob("*.sqlite*"):
            path.unlink()

    (args.results / "results.json").write_text(json.dumps(results, indent=2, default=str))
    text = report(results)
    (args.results / "results.md").write_text(text + "\n")
    print(text)
    log(f"Logs and results are in {args.results}.")
    return 1 if any(r["problems"] for r in [results["fanout"], *results["smtp_source"], *results["lists"]]) else 0


if __name__ == "__main__":
    sys.exit(main())
