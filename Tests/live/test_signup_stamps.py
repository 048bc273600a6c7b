"""Nobody who signs up through the form is silently dropped: each page load has its own stamp.

- Two people who load the course page in the same second both get their confirmation.
- A burst: 300 people (each behind their own address, through a trusted proxy) load the page
  within 10 seconds and send it 3 seconds later: 300 confirmations.
- A person who sends the form, goes Back and corrects the address gets the mail at the corrected
  address (the page comes back from Chromium's back-forward cache with its spent stamp; its
  script asks for a fresh one).
- What the service takes for a bot's post gets the usual answer, and is counted in
  `waitlist_signups_refused_total{reason}` and logged at `info` with the reason, never the address.
"""

import concurrent.futures
import http.client
import re
import threading
import time
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from conftest import Server, free_port
from test_browser import base, browser  # noqa: F401 (the browser fixture)

STAMP = re.compile(rb'name="stamp" value="([^"]+)"')


def load_form(server: Server, client: str | None = None) -> bytes:
    """The stamp of a freshly loaded course page."""
    headers = {"X-Forwarded-For": client} if client else {}
    status, _, body = server.request("GET", "/courses/negotiation", headers=headers)
    assert status == 200
    match = STAMP.search(body)
    assert match, "no stamp in the course page"
    return match.group(1)


def post_form(server: Server, address: str, stamp: bytes, client: str | None = None, website: str = "",
              origin: bool = True) -> int:
    body = urllib.parse.urlencode(
        {"email": address, "course": "negotiation", "locale": "ru", "website": website, "stamp": stamp.decode()}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    headers["Origin"] = f"http://127.0.0.1:{server.port}" if origin else "https://elsewhere.example"
    if client:
        headers["X-Forwarded-For"] = client
    status, _, _ = server.request("POST", "/subscribe", body=body, headers=headers, timeout=30)
    return status


def recipients(server: Server) -> set[str]:
    found = set()
    for path in server.mail_files():
        match = re.search(rb"^To: .*?<?([^<>\s]+@[^<>\s]+)>?\s*$", path.read_bytes(), re.MULTILINE)
        if match:
            found.add(match.group(1).decode())
    return found


def wait_for_mail(server: Server, count: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(server.mail_files()) >= count:
            break
        time.sleep(0.2)
    return server.settled_mail_count(timeout=5)


def test_two_visitors_of_the_same_second_are_two_signups(start_server):
    server = start_server()
    first, second = load_form(server), load_form(server)
    assert first != second
    time.sleep(2.5)
    assert post_form(server, "first@example.com", first) == 303
    assert post_form(server, "second@example.com", second) == 303
    assert wait_for_mail(server, 2) == 2
    assert recipients(server) == {"first@example.com", "second@example.com"}


def run_burst(server: Server, visitors: int, spread: float, pause: float) -> list[float]:
    """`visitors` people, each from an address of their own, load the page within `spread`
    seconds and each sends the form `pause` seconds after loading it; returns the seconds each
    post took. Every post must be answered 303."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def visitor(index: int) -> None:
        time.sleep(spread * index / visitors)
        client = f"198.51.{100 + index // 250}.{index % 250 + 1}"
        stamp = load_form(server, client)
        time.sleep(pause)
        started = time.monotonic()
        status = post_form(server, f"burst{index}@example.com", stamp, client)
        with lock:
            latencies.append(time.monotonic() - started)
            if status != 303:
                failures.append(f"visitor {index}: {status}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=visitors) as pool:
        list(pool.map(visitor, range(visitors)))
    assert not failures, failures[:10]
    return latencies


def test_a_burst_of_visitors_all_get_their_confirmation(start_server):
    server = start_server(environment={"WAITLIST_TRUSTED_PROXIES": "127.0.0.1"})
    latencies = run_burst(server, visitors=300, spread=10, pause=3)
    assert wait_for_mail(server, 300, timeout=120) == 300
    assert recipients(server) == {f"burst{index}@example.com" for index in range(300)}
    latencies.sort()
    print(f"300 signups: p50 {latencies[149] * 1000:.1f} ms, p99 {latencies[296] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")


def test_back_and_correct_in_a_browser_mails_the_corrected_address(start_server, browser):  # noqa: F811
    server = start_server()
    browser.get(base(server) + "/courses/negotiation")
    time.sleep(2.5)
    field = browser.find_element(By.ID, "email")
    field.send_keys("typo@exampel.com")
    browser.find_element(By.CSS_SELECTOR, "form.signup button[type=submit]").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("/subscribed"))
    # Back to the page, as the browser keeps it, to mend the address
    browser.execute_script("history.back()")
    WebDriverWait(browser, 10).until(expected_conditions.url_matches(r"/courses/negotiation$"))
    restored = browser.execute_script("return performance.getEntriesByType('navigation')[0].type")
    field = browser.find_element(By.ID, "email")
    field.clear()
    field.send_keys("anna@example.com")
    time.sleep(0.5)
    browser.find_element(By.CSS_SELECTOR, "form.signup button[type=submit]").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("/subscribed"))
    assert wait_for_mail(server, 2) == 2, f"navigation type after Back: {restored}"
    assert recipients(server) == {"typo@exampel.com", "anna@example.com"}


def metric(server: Server, metrics_port: int, reason: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    match = re.search(r'^waitlist_signups_refused_total\{reason="%s"\} (\S+)$' % reason, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_posts_taken_for_bots_are_counted_and_logged_by_reason(start_server):
    metrics_port = free_port()
    server = start_server(environment={
        "WAITLIST_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}", "WAITLIST_LOG_LEVEL": "info"})
    # Given four posts a bot would make, and a person's
    honeypot, fast, replayed, person = (load_form(server) for _ in range(4))
    assert post_form(server, "fast@example.com", fast) == 303
    time.sleep(2.5)
    assert post_form(server, "honey@example.com", honeypot, website="http://spam.example") == 303
    assert post_form(server, "person@example.com", person) == 303
    assert post_form(server, "again@example.com", person) == 303
    assert post_form(server, "foreign@example.com", replayed, origin=False) == 303
    # Then only the person is mailed, each refusal is counted by its reason…
    assert wait_for_mail(server, 1) == 1
    assert recipients(server) == {"person@example.com"}
    for reason in ("too_fast", "honeypot", "replayed", "cross_site"):
        assert metric(server, metrics_port, reason) == 1.0, reason
    # …and logged at info with its reason, never with the address
    log = server.log_path.read_text()
    refusals = [line for line in log.splitlines() if "refused as automated" in line]
    assert len(refusals) == 4, log
    assert all(" info " in line for line in refusals), refusals
    assert {re.search(r"reason=(\w+)", line).group(1) for line in refusals} == {"too_fast", "honeypot", "replayed", "cross_site"}
    assert not any("@" in line for line in refusals), refusals
