"""The embed on another site's page, in a real browser (headless Chromium through Selenium).

A sample article is served by Python's http.server from another origin (`http://localhost:PORT`,
another site than the service's `http://127.0.0.1:PORT`), once with the `<iframe>` snippet and
once with the `embed.js` snippet under a strict Content-Security-Policy. A visitor signs up inside
the frame; the answer shows in the frame while the article stays; the confirmation mail arrives
at aiosmtpd. With embed.js the frame takes its content's height. An article on an origin that is
not in WAITLIST_ALLOWED_ORIGINS gets no form in its frame: the browser refuses to frame it.
"""

import email
import email.policy
import functools
import http.server
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from conftest import REPO_ROOT, Server, free_port
from test_browser import browser  # noqa: F401  (the browser suite's fixture, used here by name)

ARTICLE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8">{head}<title>How to open a negotiation</title></head>
<body>
<h1>How to open a negotiation</h1>
<p>The first minute of a meeting decides more than its last hour.</p>
{embed}
<p id="after">More articles from the school.</p>
</body>
</html>
"""


class ArticleSite:
    """A local web site (another origin than the service) serving the sample articles."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://localhost:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, name: str, embed: str, head: str = "") -> str:
        (self.directory / name).write_text(ARTICLE.format(embed=embed, head=head))
        return f"{self.origin}/{name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class SMTPServer:
    """Tests/support/smtp_server.py (aiosmtpd) on a free port, writing each message into a folder."""

    def __init__(self, maildir: Path):
        self.maildir = maildir
        self.process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "Tests" / "support" / "smtp_server.py"), "--port", "0", "--maildir", str(maildir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        ready = self.process.stdout.readline()
        assert ready.startswith("READY "), f"smtp_server.py did not start: {ready!r}"
        self.port = int(ready.split()[1])

    def messages_to(self, address: str, timeout: float = 20) -> list[email.message.EmailMessage]:
        """The messages for `address`, once there is at least one (or none at `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            found = []
            for path in sorted(self.maildir.glob("*.eml")):
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                if address in str(message["To"]):
                    found.append(message)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def sites(tmp_path):
    """Two article sites: `allowed` is in the service's WAITLIST_ALLOWED_ORIGINS, `foreign` is not."""
    allowed, foreign = ArticleSite(tmp_path / "school"), ArticleSite(tmp_path / "foreign")
    yield allowed, foreign
    allowed.stop()
    foreign.stop()


@pytest.fixture
def smtp(tmp_path):
    server = SMTPServer(tmp_path / "smtp")
    yield server
    server.stop()


@pytest.fixture
def service(start_server, sites, smtp) -> Server:
    allowed, _ = sites
    return start_server(environment={
        "WAITLIST_ALLOWED_ORIGINS": allowed.origin,
        "WAITLIST_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
    })


def base(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


def wait_for_frame_load(driver, frame) -> None:
    """Waits until the frame's document has loaded (the article marks it), whatever it shows."""
    WebDriverWait(driver, 15).until(lambda d: frame.get_attribute("data-loaded") == "1")


def sign_up_in_frame(driver, frame, address: str) -> None:
    """Types an address into the framed form as a person does and sends it; waits for the answer."""
    driver.switch_to.frame(frame)
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "email"))
    # A person reads the form before typing: the form refuses submits faster than 2 seconds.
    time.sleep(2.5)
    driver.find_element(By.ID, "email").send_keys(address)
    driver.find_element(By.CSS_SELECTOR, "form.signup button[type=submit]").click()
    # The answer is a new document in the frame: while the old one goes away, a read of its body can
    # meet a stale element or an unloaded document; the wait reads again until the answer is there.
    WebDriverWait(driver, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda d: "Check your inbox" in d.find_element(By.TAG_NAME, "body").text)
    driver.switch_to.default_content()


def assert_confirmation_arrived(smtp: SMTPServer, server: Server, address: str) -> None:
    messages = smtp.messages_to(address)
    assert len(messages) == 1, f"expected one confirmation for {address}, got {len(messages)}:\n{server.log_tail()}"
    text = messages[0].get_body(preferencelist=("plain",)).get_content()
    assert re.search(re.escape(base(server)) + r"/confirm/[A-Za-z0-9_-]{43}", text), text


def frame_and_content_heights(driver, frame) -> tuple[float, float]:
    outer = driver.execute_script("return arguments[0].getBoundingClientRect().height", frame)
    driver.switch_to.frame(frame)
    inner = driver.execute_script("return document.documentElement.getBoundingClientRect().height")
    driver.switch_to.default_content()
    return outer, inner


def test_iframe_snippet_signs_up_inside_the_frame(browser, service, sites, smtp):
    allowed, _ = sites
    article = allowed.publish("iframe.html", (
        f'<iframe src="{base(service)}/embed/negotiation?lang=en" title="Enrolment notice sign-up" '
        'style="width:100%;border:0;height:26rem" onload="this.dataset.loaded=\'1\'"></iframe>'))
    browser.get(article)
    frame = browser.find_element(By.TAG_NAME, "iframe")
    wait_for_frame_load(browser, frame)
    sign_up_in_frame(browser, frame, "iframe-reader@example.com")
    # The article is still there: the answer changed the frame, not the page around it.
    assert browser.current_url == article
    assert browser.find_element(By.ID, "after").is_displayed()
    assert_confirmation_arrived(smtp, service, "iframe-reader@example.com")


def test_script_snippet_sizes_the_frame_and_signs_up_under_a_strict_csp(browser, service, sites, smtp):
    allowed, _ = sites
    # The host page allows scripts and frames from the service only, and no inline styles at all.
    strict = (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f'script-src {base(service)}; frame-src {base(service)}; style-src \'none\'">')
    article = allowed.publish(
        "script.html", f'<script src="{base(service)}/embed.js" data-course="negotiation" data-lang="en" async></script>', head=strict)
    browser.get(article)
    frame = WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, "iframe.waitlist-embed"))[0]
    # The frame stands where the script stood: before the paragraph that follows it.
    assert browser.execute_script("return arguments[0].nextElementSibling.id", frame) == "after"

    def sized_to_content(driver) -> bool:
        outer, inner = frame_and_content_heights(driver, frame)
        return inner > 0 and abs(outer - inner) <= 1

    WebDriverWait(browser, 15).until(sized_to_content)
    # The script starts the frame at 10rem (160 px here); the frame's message set it in pixels, taller.
    assert browser.execute_script("return arguments[0].style.height", frame).endswith("px")
    form_height, _ = frame_and_content_heights(browser, frame)
    assert form_height > 160, "the frame grew to show the whole form"
    # A message with the right shape from anything but the frame (here, the article itself) is not believed.
    browser.execute_script("window.postMessage({type: 'waitlist:height', height: 20}, '*')")
    time.sleep(0.5)
    assert frame_and_content_heights(browser, frame)[0] == form_height

    sign_up_in_frame(browser, frame, "script-reader@example.com")
    assert browser.current_url == article
    # The answer is another document in the frame; it tells its own height, and the frame follows.
    WebDriverWait(browser, 15).until(sized_to_content)
    assert_confirmation_arrived(smtp, service, "script-reader@example.com")


def test_a_site_not_allowed_gets_no_form_in_its_frame(browser, service, sites, smtp):
    allowed, foreign = sites
    snippet = (
        f'<iframe src="{base(service)}/embed/negotiation?lang=en" title="Enrolment notice sign-up" '
        'style="width:100%;border:0;height:26rem" onload="this.dataset.loaded=\'1\'"></iframe>')
    for site, shows_form in ((foreign, False), (allowed, True)):
        browser.get(site.publish("refused.html", snippet))
        frame = browser.find_element(By.TAG_NAME, "iframe")
        wait_for_frame_load(browser, frame)
        browser.switch_to.frame(frame)
        forms = browser.find_elements(By.CSS_SELECTOR, "form.signup")
        browser.switch_to.default_content()
        # The same snippet on the allowed site shows the form: the refusal is the origin's.
        assert bool(forms) == shows_form, f"{site.origin}: form shown = {bool(forms)}"
