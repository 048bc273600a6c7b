"""Slow clients time out instead of holding the server: a signup body that does not arrive within
10 seconds gets `408`, and a connection that says nothing is closed after 30 seconds of silence.
Both tests wait for the real timeouts (about 40 seconds together)."""

import socket
import time

from conftest import statuses


def test_a_body_that_never_arrives_gets_408(start_server):
    server = start_server(rate_limit="off")
    started = time.monotonic()
    # The headers promise 100 bytes of body; none ever come, and the connection stays open.
    reply = server.exchange(
        b"POST /api/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        half_close=False, timeout=25,
    )
    waited = time.monotonic() - started
    assert statuses(reply) == [408], reply[:300]
    assert 9 <= waited < 25, f"answered after {waited:.1f} s"
    assert server.settled_mail_count() == 0


def test_a_silent_connection_is_closed(start_server):
    server = start_server()
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    try:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # an unfinished request, then silence
        started = time.monotonic()
        received = b""
        while True:
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
        waited = time.monotonic() - started
    finally:
        connection.close()
    assert 25 <= waited < 60, f"closed after {waited:.1f} s"
    assert not any(code >= 500 for code in statuses(received))
    server.assert_alive()
