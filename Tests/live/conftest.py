"""Fixtures for the live suites: a real `waitlist serve` process on a free port, and small clients.

Each server gets its own temporary directory holding its SQLite file and its mail directory; with
no `WAITLIST_SMTP_URL` the service writes every message as one `.eml` file there, so counting the
files counts the mail. The binary is `$WAITLIST_BIN` if set, else `.build/debug/waitlist` of the
repository two levels above this folder (`make test` builds it before pytest runs); the server runs
with the repository root as its working directory, since it serves `Public/` from there.

A server that is no longer running when a test ends fails that test: "the process never dies of
input" is part of what these suites check.
"""

import http.client
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The first status line of an HTTP/1.x answer, and any later one (pipelined answers).
STATUS_LINE = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3})[ \r]")


def waitlist_binary() -> Path:
    """The binary under test: `$WAITLIST_BIN`, else the debug build of this checkout."""
    path = Path(os.environ.get("WAITLIST_BIN") or REPO_ROOT / ".build" / "debug" / "waitlist")
    if not path.is_file():
        pytest.fail(f"no waitlist binary at {path}: run `swift build --product waitlist` or set WAITLIST_BIN")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerDied(AssertionError):
    """The server process exited while a test was talking to it."""


class Server:
    """One `waitlist serve` process with its own database and mail directory (and any further
    `settings`, which win over the defaults here)."""

    def __init__(self, directory: Path, rate_limit: str, settings: dict[str, str] | None = None):
        self.directory = directory
        self.mail_dir = directory / "mail"
        self.log_path = directory / "server.log"
        self.port = free_port()
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("WAITLIST_")
        } | {
            "WAITLIST_DATABASE": str(directory / "w.sqlite"),
            "WAITLIST_MAIL_DIR": str(self.mail_dir),
            "WAITLIST_LOG_LEVEL": "warning",
            "WAITLIST_SIGNUP_RATE_LIMIT": rate_limit,
            # The address browsers see the pages at: the form's posts carry it as their origin.
            "WAITLIST_BASE_URL": f"http://127.0.0.1:{self.port}",
        } | (settings or {})
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(waitlist_binary()), "serve", "--hostname", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT, env=environment, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait_until_healthy(timeout=60)

    # MARK: - Life

    def _wait_until_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerDied(f"waitlist serve exited with {self.process.returncode} at start:\n{self.log_tail()}")
            try:
                if self.health() == (200, b"ok\n"):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"waitlist serve did not answer /healthz within {timeout} s:\n{self.log_tail()}")

    def health(self) -> tuple[int, bytes]:
        status, _, body = self.request("GET", "/healthz")
        return status, body

    def assert_alive(self) -> None:
        """The process still runs and `/healthz` answers `200 ok`."""
        if self.process.poll() is not None:
            raise ServerDied(f"waitlist serve died with exit code {self.process.returncode}:\n{self.log_tail()}")
        assert self.health() == (200, b"ok\n")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.closed:
            self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check_connection_error(self, error: OSError) -> None:
        """Turns a refused connection into the real failure when the server is gone."""
        if self.process.poll() is not None:
            raise ServerDied(
                f"waitlist serve died with exit code {self.process.returncode}:\n{self.log_tail()}") from error

    # MARK: - Mail

    def mail_files(self) -> list[Path]:
        if not self.mail_dir.is_dir():
            return []
        # Hidden files are the transport's temporary files, renamed into place when complete.
        return sorted(p for p in self.mail_dir.iterdir() if p.suffix == ".eml" and not p.name.startswith("."))

    def settled_mail_count(self, timeout: float = 3.0, settle: float = 1.0) -> int:
        """The number of mail files once it is above zero and has stopped changing for `settle`
        seconds, or at `timeout` (so a count of zero has been zero for the whole `timeout`)."""
        deadline = time.monotonic() + timeout
        count = len(self.mail_files())
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = len(self.mail_files())
            if now != count:
                count, stable_since = now, time.monotonic()
            elif count > 0 and time.monotonic() - stable_since >= settle:
                break
        return count

    # MARK: - Clients

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 15) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One well-formed request on a new connection: status, headers, body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        except ConnectionRefusedError as error:
            self.check_connection_error(error)
            raise
        finally:
            connection.close()

    def exchange(self, data: bytes, half_close: bool = True, timeout: float = 5) -> bytes:
        """Writes raw bytes on a new connection and returns whatever comes back until the server
        closes it (or `timeout` passes). With `half_close` the write side is shut after sending,
        so the server sees the end of the request at once; a reset connection returns what was read.
        """
        try:
            connection = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        except OSError as error:
            self.check_connection_error(error)
            raise
        received = bytearray()
        try:
            try:
                connection.sendall(data)
                if half_close:
                    connection.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may refuse early and close; read what it said
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = connection.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not chunk:
                    break
                received += chunk
        finally:
            connection.close()
        return bytes(received)


def statuses(reply: bytes) -> list[int]:
    """Every status code of the HTTP/1.x answers in `reply`."""
    return [int(code) for code in STATUS_LINE.findall(reply)]


@pytest.fixture
def start_server(tmp_path_factory):
    """Starts servers for one test (`start_server(rate_limit="20/h")`, with more settings in
    `environment`) and stops them after it; a server that died during the test fails it."""
    started: list[Server] = []

    def start(rate_limit: str = "20/h", environment: dict | None = None) -> Server:
        server = Server(tmp_path_factory.mktemp("waitlist"), rate_limit, environment)
        started.append(server)
        return server

    yield start
    dead = [s for s in started if s.process.poll() is not None]
    for server in started:
        server.stop()
    if dead:
        pytest.fail("waitlist serve died during the test:\n" + "\n".join(s.log_tail() for s in dead))
