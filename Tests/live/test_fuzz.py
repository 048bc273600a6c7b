"""Fuzz tests against a running `waitlist serve` (signup rate limit off, so input reaches the routes).

Hypothesis sends, on new connections, over raw sockets (no client library tidies the input):
- random bytes, valid requests with random bytes flipped, inserted and deleted, and chunked
  requests whose chunk framing is right or wrong;
- random methods on random paths: `..`, `%00`, bad and overlong percent-encodings, unicode,
  token-shaped segments, very long segments, random queries, on every route and on static files;
- random form bodies to `POST /subscribe` (odd fields, repeated fields, bad encodings, long values,
  wrong content types, bodies over the 16 KiB limit);
- random JSON to `POST /api/subscribe`: arbitrary JSON values, signup-shaped objects whose fields
  have odd types, huge numbers, duplicate keys, deep nesting within 16 KiB, other encodings;
- random header names and values on every route (including Content-Length, Transfer-Encoding,
  Range, Origin, Accept-Language and X-Forwarded-For).

Every answer must have a status below 500 (a connection the server closes without answering is
allowed for malformed input). At the end of each test the server process must still run and
`/healthz` answer `200 ok`, and no mail may have been written. What the fuzzer found is kept as
minimal reproductions at the end of the file.

How the fuzzer is kept from ever producing mail (so any mail is a bug in the service):
- Only a signup with a valid address makes mail. A form signup also needs a stamp the service
  signed (HMAC) at least 2 s earlier; the fuzzer never reads a stamp from a page, so its form
  bodies (which may carry perfectly valid addresses) are always treated as a bot's.
- The JSON API needs no stamp, so every string the fuzzer puts into JSON passes `defang`: when it
  holds exactly one `@`, every `.` after it is removed, and the service requires a dotted domain.
  The "near miss" addresses each break one rule of the validator on purpose; `POST /api/subscribe`
  must never answer `202` to any of them.
- Random bytes that might reach the API as a body are `scrubbed` of the bytes `@` and `\\`: an `@`
  (or its JSON escape `\\u0040`) needs one of them in UTF-8, UTF-16 and UTF-32 alike.

The examples are derandomized, so a failure reproduces on the next run; Hypothesis prints the
failing input.
"""

import json
import re
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Server, statuses

FUZZ_SETTINGS = dict(
    deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# What must never come back: files from outside Public/ (the package manifest, the SQLite database).
LEAKS = (b"swift-tools-version", b"SQLite format 3")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the whole fuzz module, with the signup rate limit off."""
    started = Server(tmp_path_factory.mktemp("fuzz"), rate_limit="off")
    yield started
    alive = started.process.poll() is None
    log = started.log_tail()
    started.stop()
    assert alive, f"waitlist serve died during fuzzing:\n{log}"


def check_reply(reply: bytes, request: bytes, must_answer: bool = False) -> None:
    codes = statuses(reply)
    assert all(code < 500 for code in codes), f"5xx for request {request[:600]!r}:\n{reply[:1200]!r}"
    if must_answer:
        assert codes, f"no answer to a well-formed request {request[:600]!r}"
    for leak in LEAKS:
        assert leak not in reply, f"{leak!r} served for {request[:600]!r}"


def after_fuzzing(server: Server) -> None:
    """The server survived and wrote no mail."""
    server.assert_alive()
    assert server.mail_files() == [], f"the fuzzer produced mail: {server.mail_files()}"


# MARK: - Never a valid address


def defang(text: str) -> str:
    """`text`, changed if needed so the service can never accept it as an address: with exactly
    one `@`, every `.` after it is dropped (the service requires a domain of two or more labels)."""
    if text.count("@") != 1:
        return text
    local, domain = text.split("@")
    return local + "@" + domain.replace(".", "")


def scrub(data: bytes) -> bytes:
    """`data` without the bytes `@` and `\\`, so no decoding of it holds an `@`."""
    return data.replace(b"@", b"").replace(b"\\", b"")


# Each breaks exactly one of the validator's rules (see EmailAddress.swift), by construction.
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
local_part = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}", fullmatch=True)
near_miss_emails = st.one_of(
    st.builds(lambda l, d: f"{l}..x@{d}.com", local_part, label),  # two dots in a row
    st.builds(lambda l, d: f".{l}@{d}.com", local_part, label),  # leading dot
    st.builds(lambda l, d: f"{l}.@{d}.com", local_part, label),  # trailing dot
    st.builds(lambda l, d: f"{l}@-{d}.com", local_part, label),  # label starts with a hyphen
    st.builds(lambda l, d: f"{l}@{d}-.com", local_part, label),  # label ends with a hyphen
    st.builds(lambda l, d, n: f"{l}@{d}.{n}", local_part, label, st.integers(0, 999)),  # numeric top-level label
    st.builds(lambda l, d: f"{l}@{d}..com", local_part, label),  # empty label
    st.builds(lambda l, d: f"{l}@{d}.com.", local_part, label),  # trailing empty label
    st.builds(lambda l, d: f"{l}@.{d}.com", local_part, label),  # leading empty label
    st.builds(lambda l, d: f"{l}@{d}", local_part, label),  # one label
    st.builds(lambda l, d: f"{l}@{d}@{d}.com", local_part, label),  # two @
    st.builds(lambda d: f"@{d}.com", label),  # empty local part
    st.builds(lambda l: f"{l}@", local_part),  # empty domain
    st.builds(lambda l, d: f"{l}@{d}_x.com", local_part, label),  # underscore in the domain
    st.builds(lambda l, d: f"{l}@{d}.c_m", local_part, label),
    st.builds(lambda l, d, c: f"{l}{c}x@{d}.com", local_part, label, st.sampled_from(list('()<>[]:;,"\\ \t'))),
    st.builds(lambda l, d, c: f"{l}{c}x@{d}.com", local_part, label,
              st.sampled_from(["\x00", "\x01", "\x7f", "\u200b", "\u200d", "\u2028", "\ue000", "\u0378"])),
    st.builds(lambda n, d: "a" * n + f"@{d}.com", st.integers(65, 300), label),  # local part too long
    st.builds(lambda n: "a@" + "b" * n + ".com", st.integers(64, 300)),  # label too long
    st.builds(lambda n: "a@" + ".".join(["b" * 60] * n) + ".com", st.integers(5, 8)),  # address too long
    st.builds(lambda l, d: f"{l}@{d}.com\n", local_part, label),  # a newline is not trimmed
    st.builds(lambda l, d: f"{l}@[{d}.com]", local_part, label),
    st.builds(lambda l, d: f"{l}@{d}.c%6fm", local_part, label),
)
odd_emails = st.one_of(near_miss_emails, st.text(max_size=80).map(defang), st.just(""), st.just(" "))

# MARK: - Building requests


def http_request(method: str, target: bytes, headers: list[tuple[bytes, bytes]] = (), body: bytes = b"",
                 content_length: bool = True) -> bytes:
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if content_length and (body or method not in ("GET", "HEAD")):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


FORM = b"application/x-www-form-urlencoded"
JSON = b"application/json"

# Well-formed requests on every route; their bodies are safe (no valid address in JSON, no stamp).
ROUTE_CALLS = [
    ("GET", b"/", b"", None),
    ("GET", b"/?lang=en", b"", None),
    ("GET", b"/courses/negotiation", b"", None),
    ("GET", b"/courses/negotiation/subscribed?lang=ru", b"", None),
    ("GET", b"/courses/unknown", b"", None),
    ("POST", b"/subscribe", b"email=someone%40example.com&course=negotiation&locale=ru&website=&stamp=1.abc", FORM),
    ("POST", b"/subscribe", b"email=not-an-address&course=negotiation&locale=en", FORM),
    ("POST", b"/api/subscribe", b'{"email": "someone@example", "course": "negotiation", "locale": "ru"}', JSON),
    ("POST", b"/api/subscribe", b'{"email": "no-at-sign.example.com"}', JSON),
    ("OPTIONS", b"/api/subscribe", b"", None),
    ("GET", b"/confirm/" + b"A" * 43, b"", None),
    ("POST", b"/confirm/" + b"A" * 43, b"", None),
    ("GET", b"/unsubscribe/" + b"B" * 43, b"", None),
    ("POST", b"/unsubscribe/" + b"B" * 43, b"List-Unsubscribe=One-Click", FORM),
    ("GET", b"/healthz", b"", None),
    ("GET", b"/metrics", b"", None),
    ("GET", b"/styles.css", b"", None),
    ("GET", b"/embed.js", b"", None),
    ("GET", b"/favicon.svg", b"", None),
    ("HEAD", b"/robots.txt", b"", None),
]


def route_request(call) -> bytes:
    method, target, body, content_type = call
    headers = [(b"Content-Type", content_type)] if content_type else []
    return http_request(method, target, headers, body)


# MARK: - Random bytes


@st.composite
def mutated_requests(draw):
    """A well-formed request with random bytes flipped, inserted and deleted."""
    data = bytearray(route_request(draw(st.sampled_from(ROUTE_CALLS))))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["flip", "insert", "delete", "duplicate"]))
        if operation == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "delete":
            del data[position:position + draw(st.integers(1, 16))]
        else:
            data[position:position] = data[position:position + draw(st.integers(1, 64))] * draw(st.integers(1, 50))
    return scrub(bytes(data))


@st.composite
def chunked_requests(draw):
    """A chunked request to a signup route whose chunk framing is right or wrong at random."""
    path, content_type = draw(st.sampled_from([(b"/subscribe", FORM), (b"/api/subscribe", JSON)]))
    body = bytearray()
    for chunk in draw(st.lists(st.binary(max_size=64).map(scrub), max_size=4)):
        size = draw(st.one_of(st.just(b"%x" % len(chunk)), st.sampled_from([b"zz", b"-1", b"", b"ffffffffffffffffff", b"0x2",
                                                                           b"%x" % (len(chunk) + 1), b"1;ext=1", b" 1"])))
        body += size + b"\r\n" + chunk + draw(st.sampled_from([b"\r\n", b"\n", b"", b"XX\r\n"]))
    body += draw(st.sampled_from([b"0\r\n\r\n", b"0\r\nTrailer: x\r\n\r\n", b"0\r\n", b""]))
    encoding = draw(st.sampled_from([b"chunked", b"chunked", b"gzip, chunked", b"chunked, chunked", b"Chunked", b"chunked "]))
    return http_request("POST", path, [(b"Content-Type", content_type), (b"Transfer-Encoding", encoding)], bytes(body),
                        content_length=draw(st.booleans()) and draw(st.booleans()))


raw_inputs = st.one_of(
    st.binary(max_size=4096).map(scrub),
    chunked_requests(),
    st.binary(max_size=512).map(lambda junk: scrub(b"POST /api/subscribe HTTP/1.1\r\n" + junk)),
    mutated_requests(),
)


def test_random_bytes_never_get_a_5xx(server):
    @settings(max_examples=1200, **FUZZ_SETTINGS)
    @given(data=raw_inputs)
    def run(data):
        check_reply(server.exchange(data), data)

    run()
    after_fuzzing(server)


# MARK: - Paths and methods

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "get", "BREW", "G\x00T"]
PREFIXES = ["/", "/courses/", "/courses/negotiation/", "/confirm/", "/unsubscribe/", "/api/", "/api/subscribe/",
            "/subscribe/", "/healthz/", "/metrics/", "/styles.css/", "//", "", "*", "http://127.0.0.1/",
            "http://evil.example/", "/Public/", "/../", "/%2e%2e/"]
NASTY_SEGMENTS = ["..", ".", "...", "%2e%2e", "%2E%2E%2F", "..%2f", "..%5c", "..\\", "%00", "%", "%z", "%2", "%zz",
                  "%ff", "%c0%af", "%e0%80%af", "%25", "%2F", "%3F", "%23", ";", ";jsessionid=1", "~", "*", "",
                  "negotiation", "subscribed", "styles.css", "embed.js", ".git", ".build", "Package.swift",
                  "w.sqlite", "waitlist.sqlite", "etc/passwd", "\x00", "\t", "\x7f", "\xff", "\u0000", "\ud7ff"]
segments = st.one_of(
    st.sampled_from(NASTY_SEGMENTS),
    st.text(max_size=30).map(lambda t: urllib.parse.quote(t, safe="")),
    st.text(st.characters(blacklist_categories=("Cc", "Zs", "Zl", "Zp", "Cs")), max_size=20),
    st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_=+/-]{0,60}", fullmatch=True),
    st.integers(200, 8000).map(lambda n: "a" * n),
)
queries = st.one_of(
    st.just(""),
    st.builds(lambda v: "?lang=" + v, st.one_of(st.sampled_from(["en", "ru", "EN", "en-US", "de", "", "%", "%00"]),
                                                st.text(max_size=40).map(lambda t: urllib.parse.quote(t)))),
    st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)), max_size=5).map(
        lambda pairs: "?" + "&".join(urllib.parse.quote(k) + "=" + urllib.parse.quote(v) for k, v in pairs)),
    st.sampled_from(["?", "??", "?&&", "?=", "?lang", "?lang=en&lang=ru", "?%", "#frag", "?a=%zz"]),
)
targets = st.builds(lambda prefix, parts, query: (prefix + "/".join(parts) + query).encode("utf-8", "surrogatepass"),
                    st.sampled_from(PREFIXES), st.lists(segments, max_size=5), queries)


def test_random_paths_and_methods_never_get_a_5xx(server):
    @settings(max_examples=1000, **FUZZ_SETTINGS)
    @given(method=st.one_of(st.sampled_from(METHODS), st.from_regex(r"[A-Z]{1,12}", fullmatch=True)),
           target=targets, body=st.one_of(st.just(b""), st.binary(max_size=64).map(scrub)))
    def run(method, target, body):
        request = http_request(method, target, body=body)
        # A request line with a space, a control character or a bad method in it may simply be refused.
        well_formed = re.fullmatch(rb"[\x21-\x7e\x80-\xff]+", target) is not None and method.isalpha() and method.isupper()
        check_reply(server.exchange(request), request, must_answer=well_formed and method != "CONNECT")

    run()
    after_fuzzing(server)


# MARK: - Forms

fake_stamps = st.one_of(
    st.builds(lambda seconds, signature: f"{seconds}.{signature}",
              st.one_of(st.integers(0, 2_000_000_000), st.integers(-(2 ** 70), 2 ** 70)),
              st.from_regex(r"[A-Za-z0-9_-]{0,50}", fullmatch=True)),
    st.from_regex(r"[0-9]{10}\.[A-Za-z0-9_-]{43}", fullmatch=True),
    st.text(max_size=120),
)
form_names = st.one_of(st.sampled_from(["email", "course", "locale", "website", "stamp"]), st.text(max_size=20))
form_values = st.one_of(
    st.emails(),  # valid addresses too: without a stamp the service signed, no form signup is mailed
    odd_emails,
    fake_stamps,
    st.sampled_from(["negotiation", "NEGOTIATION", "ru", "en", "en-US", "zz", "", " ", "\x00", "%", "+", "="]),
    st.text(max_size=300),
    st.integers(0, 20_000).map(lambda n: "x" * n),
)
form_fields = st.lists(st.tuples(form_names, form_values), max_size=8)


@st.composite
def form_bodies(draw):
    fields = draw(form_fields)
    style = draw(st.sampled_from(["encoded", "encoded", "raw", "latin-1"]))
    if style == "encoded":
        body = urllib.parse.urlencode(fields).encode()
    elif style == "raw":  # not percent-encoded: stray `%`, `&`, `=` and raw UTF-8
        body = "&".join(f"{name}={value}" for name, value in fields).encode("utf-8", "surrogatepass")
    else:
        body = urllib.parse.urlencode(fields, encoding="latin-1", errors="replace").encode()
    if draw(st.booleans()):
        body += draw(st.sampled_from([b"&", b"&&", b"=", b"%", b"%e", b"%zz", b"%ff%fe", b"\xff\xfe", b"\x00", b"&email"]))
    return body


form_content_types = st.one_of(
    st.just(FORM), st.just(FORM),
    st.sampled_from([FORM + b"; charset=utf-8", FORM.upper(), FORM + b";", b"text/plain", b"multipart/form-data; boundary=x",
                     JSON, b"", b"application/x-www-form-urlencodedX", b"*/*"]),
)


def test_random_forms_never_get_a_5xx(server):
    @settings(max_examples=600, **FUZZ_SETTINGS)
    @given(body=form_bodies(), content_type=form_content_types, path=st.sampled_from([b"/subscribe", b"/subscribe?lang=en"]))
    def run(body, content_type, path):
        request = http_request("POST", path, [(b"Content-Type", content_type)], body)
        reply = server.exchange(request, half_close=False)
        check_reply(reply, request, must_answer=len(body) <= 16 * 1024)

    run()
    after_fuzzing(server)


# MARK: - JSON

safe_text = st.text(max_size=60).map(defang)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                         st.floats(allow_nan=False, allow_infinity=False), safe_text)
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(safe_text, children, max_size=5)), max_leaves=30)
field_values = st.one_of(odd_emails, json_values, st.sampled_from(["negotiation", "en", "ru", "unknown-course"]))
signup_objects = st.fixed_dictionaries(
    {"email": st.one_of(odd_emails, odd_emails, json_values)},
    optional={"course": st.one_of(st.just("negotiation"), field_values), "locale": st.one_of(st.just("en"), field_values),
              "website": field_values, "stamp": field_values},
)
# JSON text Python would not write: odd numbers and literals, spliced into a signup-shaped object.
RAW_LITERALS = [b"1e999", b"-1e999", b"123456789012345678901234567890123456789", b"-0", b"0.0000000000000000000001e-400",
                b"NaN", b"Infinity", b"undefined", b"nul", b"tru", b"'single'", b'"\\ud800"', b'"\\u0000"', b'"\\x41"',
                b'"unterminated', b"[1,]", b"{,}", b"{\"a\":1,}", b"01", b"0x10", b"+1", b".5", b"1.", b"1e", b"\"\t\""]
raw_fragments = st.one_of(st.sampled_from(RAW_LITERALS), json_values.map(lambda v: json.dumps(v).encode()))


@st.composite
def json_bodies(draw):
    kind = draw(st.sampled_from(["value", "signup", "signup", "raw", "duplicate", "deep", "deep-object", "comment"]))
    if kind == "value":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "signup":
        body = json.dumps(draw(signup_objects), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    elif kind == "raw":
        field = draw(st.sampled_from([b"email", b"course", b"locale"]))
        body = b'{"email": ' + json.dumps(draw(odd_emails)).encode() + b', "' + field + b'": ' + draw(raw_fragments) + b"}"
    elif kind == "duplicate":
        body = b'{"email": ' + json.dumps(draw(odd_emails)).encode() + b', "email": ' + json.dumps(draw(odd_emails)).encode() + b"}"
    elif kind == "deep":
        depth = draw(st.integers(100, 8000))
        body = b'{"email": ' + b"[" * depth + b"]" * depth + b"}"
    elif kind == "deep-object":
        depth = draw(st.integers(100, 1400))
        body = b'{"email": "x", "course": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    else:
        body = b'{"email": "a@b" /* comment */, "course": "negotiation"}'
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "bom", "utf-16", "utf-32-be", "truncated"]))
    if encoding == "bom":
        body = b"\xef\xbb\xbf" + body
    elif encoding in ("utf-16", "utf-32-be"):
        body = body.decode("utf-8", "surrogatepass").encode(encoding, "surrogatepass")
    elif encoding == "truncated" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    return body


json_content_types = st.one_of(
    st.just(JSON), st.just(JSON),
    st.sampled_from([JSON + b"; charset=utf-8", JSON + b"; charset=utf-16", b"APPLICATION/JSON", b"application/jsonx",
                     b"text/json", FORM, b"", b"application/json\x00"]),
)


def test_random_json_never_gets_a_5xx_or_a_signup(server):
    @settings(max_examples=700, **FUZZ_SETTINGS)
    @given(body=json_bodies(), content_type=json_content_types)
    def run(body, content_type):
        request = http_request("POST", b"/api/subscribe", [(b"Content-Type", content_type)], body)
        reply = server.exchange(request, half_close=False)
        check_reply(reply, request, must_answer=len(body) <= 16 * 1024)
        assert 202 not in statuses(reply), f"a signup accepted for {request[:600]!r}"

    run()
    after_fuzzing(server)


# MARK: - Headers

INTERESTING_HEADERS = [b"Content-Length", b"Transfer-Encoding", b"Content-Type", b"Origin", b"Accept-Language",
                       b"X-Forwarded-For", b"Host", b"Range", b"If-Range", b"If-None-Match", b"If-Modified-Since",
                       b"Expect", b"Connection", b"Cookie", b"User-Agent", b"Referer", b"Accept", b"Accept-Encoding",
                       b"Upgrade", b"Authorization", b"Content-Encoding", b"Access-Control-Request-Method"]
INTERESTING_VALUES = [b"", b" ", b"-1", b"0", b"99999999999999999999999", b"1, 2", b"chunked", b"chunked, identity",
                      b"gzip", b"identity", b"100-continue", b"close", b"keep-alive, Upgrade", b"h2c", b"websocket",
                      b"null", b"http://evil.example", b"http://127.0.0.1:8080", b"file://", b"en", b"ru;q=0.1, en",
                      b"*", b";;;,,,", b"bytes=0-", b"bytes=-5", b"bytes=5-1", b"bytes=0-0,1-1,2-2",
                      b"bytes=99999999999999999999-", b"bytes=", b"units=0-1", b"Thu, 01 Jan 1970 00:00:00 GMT",
                      b"Sat, 99 Foo 9999 99:99:99 GMT", b'"etag"', b'W/"x", *', b"127.0.0.1", b"::1, 10.0.0.1",
                      b"unknown", b"\xff\xfe", b"\x00", b"\x7f", b"a\tb", b"\x80\x81"]
header_names = st.one_of(
    st.sampled_from(INTERESTING_HEADERS),
    st.from_regex(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,40}", fullmatch=True),
    st.binary(min_size=1, max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"") or b"X"),
)
header_values = st.one_of(
    st.sampled_from(INTERESTING_VALUES),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")),
    st.binary(max_size=100).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.integers(1000, 12000).map(lambda n: b"v" * n),
    st.sampled_from([b"a\r\n folded", b"a\nb", b"a\rb", b"a\r\nInjected: yes"]),
)

header_pairs = st.one_of(st.tuples(st.sampled_from(INTERESTING_HEADERS), st.sampled_from(INTERESTING_VALUES)),
                         st.tuples(header_names, header_values))


def test_random_headers_never_get_a_5xx(server):
    @settings(max_examples=1200, **FUZZ_SETTINGS)
    @given(call=st.sampled_from(ROUTE_CALLS), headers=st.lists(header_pairs, min_size=1, max_size=6))
    def run(call, headers):
        method, target, body, content_type = call
        base = [(b"Content-Type", content_type)] if content_type else []
        request = http_request(method, target, base + headers, scrub(body) if b"/api/" in target else body)
        check_reply(server.exchange(request), request)

    run()
    after_fuzzing(server)


# MARK: - Minimal reproductions of what the fuzzer found


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"POST /api/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk-size"),
    pytest.param(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: 10\r\n\r\nemail=", id="body-shorter-than-content-length"),
])
def test_a_broken_request_body_never_gets_a_5xx(server, request_bytes):
    check_reply(server.exchange(request_bytes), request_bytes)


def test_after_all_fuzzing_the_server_runs_and_no_mail_was_written(server):
    server.assert_alive()
    assert server.settled_mail_count(timeout=3) == 0
