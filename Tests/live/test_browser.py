"""The pages in a real browser (headless Chromium through Selenium), as a visitor uses them.

- A person fills in the course page's form (taking the seconds a person takes), lands on the
  "check your inbox" page, opens the confirmation link from the mail and confirms with its button.
- A scanner (a headless browser that runs scripts) opening the link right after delivery
  confirms nothing; nor does one that hides its automation and moves the pointer over the page
  long after the mail went out: only the button's press confirms.
- With JavaScript off, the confirmation page waits for the button, and the button confirms.
- The honeypot field is out of a person's sight and reach.
"""

import email
import email.policy
import re
import sqlite3
import subprocess
import time

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from conftest import Server, waitlist_binary

CHROMEDRIVER = "/usr/bin/chromedriver"


def make_browser(javascript: bool = True, hide_automation: bool = False) -> webdriver.Chrome:
    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    if hide_automation:
        # As a scanner that passes for a person does: `navigator.webdriver` is false.
        options.add_argument("--disable-blink-features=AutomationControlled")
        options.add_experimental_option("excludeSwitches", ["enable-automation"])
    # A Russian-speaking visitor: the browser asks for Russian pages.
    preferences = {"intl.accept_languages": "ru-RU,ru"}
    if not javascript:
        preferences["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", preferences)
    try:
        return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as error:
        pytest.fail(f"cannot start Chromium ({error.msg}); `scripts/install-deps --test` installs chromium and chromium-driver")


@pytest.fixture
def browser():
    driver = make_browser()
    yield driver
    driver.quit()


@pytest.fixture
def browser_without_javascript():
    driver = make_browser(javascript=False)
    yield driver
    driver.quit()


def base(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


def sign_up_in_browser(driver: webdriver.Chrome, server: Server, address: str) -> None:
    driver.get(base(server) + "/courses/negotiation")
    # A person reads the page before typing: the form refuses submits faster than 2 seconds.
    time.sleep(2.5)
    driver.find_element(By.ID, "email").send_keys(address)
    driver.find_element(By.CSS_SELECTOR, "form.signup button[type=submit]").click()
    WebDriverWait(driver, 10).until(expected_conditions.url_contains("/subscribed"))


def confirmation_path(server: Server) -> str:
    """The path of the confirmation link in the one mail the server wrote."""
    assert server.settled_mail_count() == 1
    message = email.message_from_bytes(server.mail_files()[0].read_bytes(), policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(r"https?://[^/\s]+(/confirm/[A-Za-z0-9_-]{43})", text)
    assert match, f"no confirmation link in:\n{text}"
    return match.group(1)


def confirmed_count(server: Server) -> int:
    status = subprocess.run(
        [str(waitlist_binary()), "status", "--json"], capture_output=True, text=True, check=True,
        env={"WAITLIST_DATABASE": str(server.directory / "w.sqlite"), "PATH": "/usr/bin:/bin"},
    )
    return int(re.search(r'"confirmed" : (\d+)', status.stdout).group(1))


def test_a_scanner_opening_a_fresh_link_confirms_nothing(start_server, browser):
    """A mail scanner that runs scripts in a headless browser opens the link as soon as the mail
    arrives: the page waits for a person, and nobody is confirmed."""
    server = start_server()
    sign_up_in_browser(browser, server, "scanned@example.com")
    scanner = make_browser()
    try:
        scanner.get(base(server) + confirmation_path(server))
        time.sleep(3)
        assert scanner.find_element(By.TAG_NAME, "h1").text == "Подтвердите подписку"
        assert scanner.execute_script("return document.querySelector('form[data-auto-submit]') === null")
    finally:
        scanner.quit()
    assert confirmed_count(server) == 0


def test_a_scanner_that_hides_its_automation_and_moves_the_pointer_confirms_nothing(start_server, browser):
    """A scanner that passes for a person (no `navigator.webdriver`, a visible page, pointer moves,
    touches and keys, both as input events and dispatched by script) opens the link long after the
    mail went out: the subscriber stays pending. Then the button's press confirms."""
    server = start_server()
    sign_up_in_browser(browser, server, "late-scan@example.com")
    path = confirmation_path(server)
    # The mail went out ten minutes ago (as the token's record says), long past any first minutes.
    database = sqlite3.connect(server.directory / "w.sqlite", timeout=10)
    try:
        with database:
            database.execute("UPDATE token SET createdAt = strftime('%Y-%m-%d %H:%M:%f', createdAt, '-600 seconds')")
    finally:
        database.close()
    scanner = make_browser(hide_automation=True)
    try:
        scanner.get(base(server) + path)
        assert scanner.execute_script("return navigator.webdriver") is not True
        assert scanner.execute_script("return document.visibilityState") == "visible"
        heading = scanner.find_element(By.TAG_NAME, "h1")
        ActionChains(scanner).move_to_element(heading).move_by_offset(40, 25).move_by_offset(-60, 10).perform()
        scanner.execute_script("""
            for (const name of ["pointermove", "pointerdown", "mousemove", "touchstart", "keydown"]) {
                const event = name.startsWith("pointer") ? new PointerEvent(name, {bubbles: true})
                    : name === "keydown" ? new KeyboardEvent(name, {bubbles: true, key: "Tab"})
                    : new Event(name, {bubbles: true});
                document.body.dispatchEvent(event);
                window.dispatchEvent(event);
            }
        """)
        time.sleep(3)
        assert scanner.find_element(By.TAG_NAME, "h1").text == "Подтвердите подписку"
        assert confirmed_count(server) == 0
        # A person's press of the button confirms.
        scanner.find_element(By.CSS_SELECTOR, "form.token-action button").click()
        WebDriverWait(scanner, 10).until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Подписка подтверждена"))
        assert confirmed_count(server) == 1
    finally:
        scanner.quit()


def test_a_person_signs_up_and_confirms_with_one_click(start_server, browser):
    server = start_server()
    sign_up_in_browser(browser, server, "browser@example.com")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Проверьте почту"
    browser.get(base(server) + confirmation_path(server))
    assert confirmed_count(server) == 0
    browser.find_element(By.CSS_SELECTOR, "form.token-action button").click()
    WebDriverWait(browser, 10).until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Подписка подтверждена"))
    assert confirmed_count(server) == 1


def test_without_javascript_the_button_confirms(start_server, browser_without_javascript):
    server = start_server()
    driver = browser_without_javascript
    sign_up_in_browser(driver, server, "nojs@example.com")
    driver.get(base(server) + confirmation_path(server))
    time.sleep(1)
    assert driver.find_element(By.TAG_NAME, "h1").text == "Подтвердите подписку"
    assert confirmed_count(server) == 0
    driver.find_element(By.CSS_SELECTOR, "form.token-action button").click()
    WebDriverWait(driver, 10).until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Подписка подтверждена"))
    assert confirmed_count(server) == 1


def test_the_honeypot_is_out_of_sight(start_server, browser):
    server = start_server()
    browser.get(base(server) + "/courses/negotiation")
    trap = browser.find_element(By.NAME, "website")
    rect = browser.execute_script("return arguments[0].getBoundingClientRect().toJSON();", trap)
    assert rect["right"] <= 0 or rect["width"] <= 1
    assert trap.get_attribute("tabindex") == "-1"
    # Without the stylesheet (it did not load), the markup alone keeps the field out of sight.
    browser.execute_script("document.querySelectorAll('link[rel=stylesheet]').forEach(function (l) { l.remove(); });")
    rect = browser.execute_script("return arguments[0].getBoundingClientRect().toJSON();", trap)
    assert rect["width"] == 0 and rect["height"] == 0
    assert not trap.is_displayed()
