"""``shimeji run`` serving HTTP routes to hostile clients, as a separate process
on the broker: malformed requests, oversized bodies, slow clients, a fuzz of
seeded garbage, a taken port, and SIGTERM with a request in flight.

After each kind of abuse the server is asked a normal request (a route that
calls a backend over RPC), which must still be answered.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote_from_bytes

import pytest

from .broker import clean_broker
from .http_client import (
    QUEUES,
    SERVICES,
    Served,
    chunked,
    post_size,
    read_answer,
    write_config,
)
from .processes import ServiceProcess, free_port

LIMIT = 100_000  # WEB_MAX_BODY_SIZE of the process
TIMEOUT = 2  # WEB_TIMEOUT of the process


@pytest.fixture(scope="module")
def served(broker_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    exchange = f"shimeji-http-{uuid.uuid4().hex[:10]}"
    port = free_port()
    config = write_config(
        tmp_path_factory.mktemp("http") / "config.yaml",
        broker_uri,
        exchange,
        port,
        WEB_MAX_BODY_SIZE=LIMIT,
        WEB_TIMEOUT=TIMEOUT,
    )
    process = ServiceProcess(SERVICES, config=config)
    try:
        process.wait_ready()
        yield Served(process, port)
    finally:
        code = process.stop()
        clean_broker(broker_uri, *QUEUES, exchange=exchange)
    assert code == 0, "".join(process.lines)


def test_routes_answer_and_unknown_ones_are_refused(served):
    """A route calling the backend answers; an unknown path is 404, a known
    path with a wrong method 405 naming the allowed ones."""
    served.assert_serving()
    status, _, _ = served.request("GET", "/nowhere")
    assert status == 404
    status, headers, _ = served.request("DELETE", "/size")
    assert status == 405
    assert headers["Allow"] == "POST"


#: A malformed request, and the status it is answered with.
MALFORMED = {
    "garbage request line": b"GARBAGE\r\n\r\n",
    "method only": b"GET\r\n\r\n",
    "no version": b"GET /hello/x\r\n\r\n",
    "bad version": b"GET /hello/x HTTP/9.9\r\nHost: x\r\n\r\n",
    "absolute garbage url": b"GET ::::// HTTP/1.1\r\nHost: x\r\n\r\n",
    "header without colon": b"GET /hello/x HTTP/1.1\r\nHost x\r\n\r\n",
    "nul in request line": b"GET /hello/\x00x HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul in header value": b"GET /hello/x HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "nul in header name": b"GET /hello/x HTTP/1.1\r\nHost: x\r\nX-\x00: 1\r\n\r\n",
    "escape in header": b"GET /hello/x HTTP/1.1\r\nHost: x\r\nX-A: \x1b[2J\r\n\r\n",
    "bare lf": b"GET /hello/x HTTP/1.1\nHost: x\n\n",
    "bad content-length": b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "negative content-length": b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "invalid chunk size": (
        b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n0\r\n\r\n"
    ),
    "signed chunk size": (
        b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"+5\r\nabcde\r\n0\r\n\r\n"
    ),
    "0x chunk size": (
        b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0x5\r\nabcde\r\n0\r\n\r\n"
    ),
    "endless trailers": (
        b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n" + b"X-T: 1\r\n" * 200 + b"\r\n"
    ),
    "negative chunk size": (
        b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"-5\r\nabcde\r\n0\r\n\r\n"
    ),
    "chunk without crlf": (
        b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n"
    ),
    "unknown transfer coding": (
        b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, zork\r\n\r\n"
    ),
    "header flood": (
        b"GET /hello/x HTTP/1.1\r\nHost: x\r\n" + b"X-Flood: yyyyyyyyyy\r\n" * 20_000 + b"\r\n"
    ),
    "one huge header": b"GET /hello/x HTTP/1.1\r\nX-Big: " + b"z" * 200_000 + b"\r\n\r\n",
    "huge url": b"GET /hello/" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_request_is_refused_and_the_server_serves_on(served, name):
    """Each malformed request gets its 4xx (or 505, 501), never reaches a
    route, and the server answers the next request."""
    status, body = served.raw(MALFORMED[name])
    assert status == STATUS.get(name, 400), (status, body)
    served.assert_serving()


#: The malformed requests not answered 400.
STATUS = {
    "bad version": 505,
    "unknown transfer coding": 501,
    "header flood": 413,
    "one huge header": 413,
    "huge url": 414,
}


def test_a_malformed_chunk_is_answered_400_and_the_connection_closed(served):
    """A chunk size that is not hex reaches the body read: 400, and the rest of
    the body is never taken for a next request (the connection closes)."""
    with served.connect() as sock:
        sock.sendall(
            b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nGET /hello/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        status, body = read_answer(sock)
        assert status == 400
        assert b"request body could not be read" in body
        assert sock.recv(1000) == b""  # closed: nothing more is answered


@pytest.mark.parametrize("chunk", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_the_limit_are_answered_413(served, chunk):
    """WEB_MAX_BODY_SIZE is honoured for bodies given by Content-Length and for
    chunked ones: under it the route reads the body, over it (and at 10 MB) 413."""
    status, body = post_size(served, b"x" * (LIMIT - 1000), chunk=chunk)
    assert (status, body) == (200, b'{"size": %d}' % (LIMIT - 1000))
    for size in (LIMIT + 1, 10 * 1024 * 1024):
        status, body = post_size(served, b"x" * size, chunk=chunk)
        assert status == 413, (size, body)
    served.assert_serving()


def test_chunked_requests_keep_the_connection_alive(served):
    """Two chunked bodies (with an extension and a trailer) one after the other
    on one connection: each is read to its end, both are answered."""
    with served.connect() as sock:
        for body in (b"first body", b"second"):
            sock.sendall(
                b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"%x;name=value\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(body), body)
            )
            assert read_answer(sock) == (200, b'{"size": %d}' % len(body))


def test_an_unread_chunked_body_closes_the_connection(served):
    """A chunked request no route takes is answered 404 and its connection
    closed: the body, holding what looks like a request, is never read as one."""
    with served.connect() as sock:
        sock.sendall(
            b"POST /nowhere HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2a\r\nGET /hello/smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"
        )
        status, _ = read_answer(sock)
        assert status == 404
        assert sock.recv(1000) == b""


def test_a_length_over_the_limit_is_answered_413_before_the_body_is_sent(served):
    """A Content-Length of 10 MB is refused on the headers alone."""
    status, body = served.raw(
        b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n", end=False
    )
    assert status == 413, body


def test_a_chunked_body_growing_past_the_limit_in_small_chunks_is_413(served):
    """Many small chunks adding up to more than the limit: 413, connection closed."""
    with served.connect() as sock:
        sock.sendall(b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(OSError):  # the server may close before all is sent
            sock.sendall(chunked(b"y" * (LIMIT * 2), size=100))
        status, body = read_answer(sock)
        assert status == 413
        assert b"WEB_MAX_BODY_SIZE" in body


def test_slow_clients_time_out_while_others_are_served(served):
    """Clients that send half a request (or half a body) and stall are answered
    408 (or closed) after WEB_TIMEOUT; meanwhile other clients are served."""
    stalled = []
    for partial in (
        b"GET /hello/slow HTTP/1.1\r\nHost: x\r\n",
        b"GET /hel",
        b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
    ):
        sock = served.connect(timeout=TIMEOUT + 10)
        sock.sendall(partial)
        stalled.append(sock)
    started = time.monotonic()
    try:
        for _ in range(5):
            served.assert_serving()
        served_meanwhile = time.monotonic() - started
        answers = [read_answer(sock) for sock in stalled]
        waited = time.monotonic() - started
    finally:
        for sock in stalled:
            sock.close()
    assert served_meanwhile < TIMEOUT, "the stalled clients held the others up"
    for status, _ in answers:
        assert status in (None, 408), answers
    assert answers[2][0] == 408  # a stalled body is the route's read timing out
    assert waited < TIMEOUT + 8, f"stalled clients were let wait {waited:.1f}s"
    served.assert_serving()


HOSTILE_PIECES = [
    b"\x00",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b":",
    b"\x1b[31m",
    b"\xff\xfe",
    "\u202e".encode(),
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Content-Length: 5\r\n",
    b"%00%0d%0a",
    b"/../../etc/passwd",
    b"HTTP/1.1",
    b"\t",
    b"ffffffffffffffff\r\n",
]

VALID = [
    b"GET /hello/fuzz HTTP/1.1\r\nHost: x\r\nnameko.user_id: u1\r\n\r\n",
    b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
]


def hostile_request(rng: random.Random) -> bytes:
    data = bytearray(rng.choice(VALID))
    for _ in range(rng.randint(1, 6)):
        action = rng.randrange(5)
        where = rng.randint(0, len(data))
        if action == 0:  # flip a byte
            if data:
                data[min(where, len(data) - 1)] = rng.randrange(256)
        elif action == 1:  # insert a hostile piece
            data[where:where] = rng.choice(HOSTILE_PIECES) * rng.randint(1, 3)
        elif action == 2:  # cut
            del data[where:]
        elif action == 3:  # random bytes
            data[where:where] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        else:  # repeat a stretch
            data[where:where] = data[max(0, where - 30) : where] * rng.randint(2, 50)
    return bytes(data)


def failing_request(rng: random.Random) -> bytes:
    """A request to the route that raises its URL text, percent-encoding
    control characters, a forged log line and a long tail."""
    text = bytes(rng.randrange(256) for _ in range(rng.randint(1, 60)))
    text += b"\r\n2026-01-01 00:00:00 ERROR forged line\x1b[2J" + b"z" * rng.randint(0, 5000)
    path = quote_from_bytes(text, safe=b"")
    return f"GET /fail/{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def test_a_seeded_fuzz_of_hostile_requests_leaves_the_server_serving(served):
    """500 seeded mutations of valid requests, each on its own connection, and
    now and then a route failing with hostile text: no mutated request gets a
    5xx of ours, the server serves on, and every line it logged meanwhile (the
    route's failures among them) is short and holds no raw control characters."""
    rng = random.Random(20261202)
    logged_before = len(served.process.lines)
    statuses: dict[int | None, int] = {}
    for number in range(500):
        if number % 25 == 0:
            status, _ = served.raw(failing_request(rng), timeout=TIMEOUT + 10)
            assert status == 500
            continue
        status, _ = served.raw(hostile_request(rng), timeout=TIMEOUT + 10)
        statuses[status] = statuses.get(status, 0) + 1
    served.assert_serving()
    assert not set(statuses) & {500, 502}, statuses
    assert statuses.get(400, 0) > 250, statuses  # most are refused as malformed
    assert statuses.get(200, 0) > 0, statuses  # and some mutations are still valid
    lines = served.process.lines[logged_before:]
    assert sum("forged line" in line for line in lines) >= 20  # the failures were logged
    for line in lines:
        text = line.rstrip("\n")
        assert len(text) <= 1000, text[:200]
        assert text.isprintable(), repr(text[:200])
        assert not text.startswith("2026-01-01"), text[:200]
