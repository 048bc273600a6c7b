"""Flood tests against a running `waitlist serve`.

- With the default limit (20 signups an hour per client), 200 signups from one client, each with
  a different valid address, half through the form and half through the JSON API and sent eight
  at a time: exactly 20 are accepted (303/202), the other 180 get `429` with a positive integer
  `Retry-After`, and at most 20 confirmation mails are written (20 expected).
- With the limit off, one address sent 10 times, through the form and the API in turn, gets the
  same answer each time and exactly one confirmation mail.

Form signups are made like a person's: the page is fetched once and its signed stamp is sent only
after the 2 seconds a person needs at least, so they count as real signups and are mailed.
"""

import json
import re
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

STAMP = re.compile(rb'name="stamp" value="([^"]+)"')
CHECK_INBOX = "/courses/negotiation/subscribed?lang=ru"


def page_stamp(server) -> str:
    """The stamp of a freshly rendered course page, old enough to be a person's once returned."""
    status, _, body = server.request("GET", "/courses/negotiation")
    assert status == 200
    match = STAMP.search(body)
    assert match, "the course page has no stamp field"
    time.sleep(2.1)
    return match.group(1).decode()


def sign_up(server, email: str, stamp: str, through_form: bool):
    """One signup through the form or the API: (status, headers, body)."""
    if through_form:
        form = {"email": email, "course": "negotiation", "locale": "ru", "website": "", "stamp": stamp}
        return server.request(
            "POST", "/subscribe", body=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
    body = json.dumps({"email": email, "course": "negotiation", "locale": "ru"}).encode()
    return server.request("POST", "/api/subscribe", body=body, headers={"Content-Type": "application/json"})


def is_accepted(status, headers, body, through_form: bool) -> bool:
    if through_form:
        return status == 303 and headers["Location"] == CHECK_INBOX
    return status == 202 and json.loads(body) == {"status": "pending"}


def test_flood_from_one_client_is_limited_to_twenty_signups_and_twenty_mails(start_server):
    server = start_server(rate_limit="20/h")
    stamp = page_stamp(server)

    attempts = [(f"flood{i}@example.com", i % 2 == 0) for i in range(200)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda attempt: sign_up(server, attempt[0], stamp, attempt[1]), attempts))

    accepted = [a for a, (status, headers, body) in zip(attempts, answers) if is_accepted(status, headers, body, a[1])]
    limited = [(status, headers, body) for status, headers, body in answers if status == 429]
    others = sorted({status for status, _, _ in answers} - {202, 303, 429})
    assert others == [], f"unexpected statuses {others}"
    assert len(accepted) == 20, f"{len(accepted)} signups accepted, 20 expected"
    assert len(limited) == 180
    for status, headers, body in limited:
        retry_after = headers["Retry-After"]
        assert retry_after is not None and retry_after.isdigit() and int(retry_after) > 0, retry_after
    api_refusals = [json.loads(body) for (status, _, body), (_, form) in zip(answers, attempts) if status == 429 and not form]
    assert all(reply["error"] == "too_many_requests" for reply in api_refusals)

    mails = server.settled_mail_count()
    print(f"flood: {len(accepted)} accepted, {len(limited)} refused with 429, {mails} mails written")
    assert 1 <= mails <= 20
    server.assert_alive()


def test_one_address_sent_ten_times_gets_one_mail(start_server):
    server = start_server(rate_limit="off")
    stamp = page_stamp(server)

    for attempt in range(10):
        through_form = attempt % 2 == 0
        status, headers, body = sign_up(server, "Repeat.Person@Example.com", stamp, through_form)
        assert is_accepted(status, headers, body, through_form), (attempt, status, body[:200])

    assert server.settled_mail_count() == 1
    message = server.mail_files()[0].read_text(errors="replace")
    assert re.search(r"^To:.*Repeat\.Person@example\.com", message, re.MULTILINE | re.IGNORECASE)
    server.assert_alive()
