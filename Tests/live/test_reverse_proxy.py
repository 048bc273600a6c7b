"""The example nginx configuration (`deploy/nginx.conf`) in front of `waitlist serve`.

nginx runs the shipped site configuration with its ports, certificate paths and upstream moved to
this machine (a self-signed certificate stands in for certbot's), and the service believes
`X-Forwarded-For` from `127.0.0.1`, as the settings file example says. Visitors connect to nginx
from different loopback addresses: the signup limit (one per hour here) counts each visitor's own
address, not the proxy's, and a visitor cannot pick another address by sending the header itself.
"""

import http.client
import json
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Server, free_port

SHIPPED_SITE = REPO_ROOT / "deploy" / "nginx.conf"
CERTBOT_DIRECTORY = "/etc/letsencrypt/live/waitlist.school.example"


class Proxy:
    """nginx in the foreground with the shipped site configuration, rewritten for this machine."""

    def __init__(self, directory: Path, upstream_port: int):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).is_file():
            pytest.fail("no nginx: `scripts/install-deps --test` installs it")
        self.directory = directory
        self.https_port = free_port()
        self.http_port = free_port()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=waitlist.school.example",
             "-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem")],
            check=True, capture_output=True,
        )
        site = SHIPPED_SITE.read_text()
        for old, new in [
            ("listen 80;", f"listen 127.0.0.1:{self.http_port};"),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;"),
            (CERTBOT_DIRECTORY, str(directory)),
            ("/var/www/certbot", str(directory / "webroot")),
            ("proxy_pass http://127.0.0.1:8080;", f"proxy_pass http://127.0.0.1:{upstream_port};"),
        ]:
            assert old in site, f"deploy/nginx.conf no longer has {old!r}, which this test moves"
            site = site.replace(old, new)
        # This machine may have no IPv6 loopback.
        site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
        (directory / "site.conf").write_text(site)
        temporary = " ".join(
            f"{kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (directory / "nginx.conf").write_text(
            f"daemon off;\npid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'} warn;\n"
            f"events {{ worker_connections 64; }}\n"
            f"http {{ access_log {directory / 'access.log'}; {temporary} include {directory / 'site.conf'}; }}\n")
        self.process = subprocess.Popen(
            [nginx, "-p", str(directory), "-c", str(directory / "nginx.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (directory / "error.log").read_text()
            try:
                self.request("127.0.0.1", "GET", "/healthz")
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("nginx did not answer within 10 s")

    def request(self, source: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """One request over https from the loopback address `source`: status, headers, body."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.https_port, source_address=(source, 0), context=context, timeout=15)
        try:
            connection.request(method, path, body=body, headers={"Host": "waitlist.school.example"} | (headers or {}))
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def sign_up(self, source: str, address: str, headers: dict | None = None) -> int:
        body = json.dumps({"email": address, "course": "negotiation"}).encode()
        status, _, _ = self.request(source, "POST", "/api/subscribe", body=body, headers={"Content-Type": "application/json"} | (headers or {}))
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def proxied(tmp_path_factory):
    """A service with a limit of one signup an hour per visitor, behind the example nginx."""
    server = Server(
        tmp_path_factory.mktemp("waitlist"), rate_limit="1/h", settings={"WAITLIST_TRUSTED_PROXIES": "127.0.0.1"})
    proxy = Proxy(tmp_path_factory.mktemp("nginx"), server.port)
    yield proxy
    proxy.stop()
    server.stop()


def test_the_limit_counts_each_visitor_behind_the_proxy(proxied):
    assert proxied.sign_up("127.0.0.2", "first@example.com") == 202
    assert proxied.sign_up("127.0.0.2", "again@example.com") == 429
    assert proxied.sign_up("127.0.0.3", "second@example.com") == 202


def test_a_visitor_cannot_choose_its_address_with_the_header(proxied):
    assert proxied.sign_up("127.0.0.2", "first@example.com") == 202
    assert proxied.sign_up("127.0.0.2", "forged@example.com", headers={"X-Forwarded-For": "192.0.2.77"}) == 429


def test_plain_http_moves_to_https(proxied):
    connection = http.client.HTTPConnection("127.0.0.1", proxied.http_port, timeout=15)
    try:
        connection.request("GET", "/courses/negotiation", headers={"Host": "waitlist.school.example"})
        response = connection.getresponse()
        assert response.status == 301
        assert response.headers["Location"] == "https://waitlist.school.example/courses/negotiation"
    finally:
        connection.close()
