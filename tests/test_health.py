"""The health endpoint: right answers to probes, and hostile clients change nothing."""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from shimeji.exceptions import ConfigurationError
from shimeji.health import MAX_CONNECTIONS, HealthServer, parse_address
from shimeji.runner import Health

READY = Health(live=True, ready=True, state="running", replicas={"svc-1": "consuming"})
RECONNECTING = Health(live=True, ready=False, state="running", replicas={"svc-1": "reconnecting"})
FAILED = Health(live=False, ready=False, state="running", replicas={"svc-1": "failed: broker gone"})


@pytest.fixture
def served():
    """A health server on a free port answering what ``state[0]`` holds."""
    state = [READY]
    server = HealthServer(lambda: state[0], "127.0.0.1:0", request_timeout=0.5).start()
    yield server, state
    server.close()


def get(server: HealthServer, path: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def raw(server: HealthServer, data: bytes, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # all sent: what is half a request is answered now
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        (READY, {"/livez": 200, "/readyz": 200, "/healthz": 200}),
        (RECONNECTING, {"/livez": 200, "/readyz": 503, "/healthz": 503}),
        (FAILED, {"/livez": 503, "/readyz": 503, "/healthz": 503}),
    ],
)
def test_each_endpoint_answers_as_the_health_says(served, health, expected):
    """/livez follows liveness, /readyz readiness, /healthz both; the body is the health."""
    server, state = served
    state[0] = health
    for path, status in expected.items():
        got, body = get(server, path)
        assert got == status, path
        assert json.loads(body) == health.as_dict()


def test_other_paths_and_methods_are_refused(served):
    """Another path is a 404, another method a 405; HEAD answers without a body."""
    server, _ = served
    assert get(server, "/")[0] == 404
    assert get(server, "/readyz/../etc")[0] == 404
    assert get(server, "/readyz", "POST")[0] == 405
    assert get(server, "/readyz", "DELETE")[0] == 405
    assert get(server, "/readyz", "HEAD") == (200, b"")
    assert get(server, "/readyz?verbose=1")[0] == 200


def test_a_failing_health_check_is_a_503_not_a_crash(served, caplog):
    """A health callable that raises answers 503 and is logged; the server serves on."""
    server, state = served

    def broken():
        raise RuntimeError("boom")

    server._server.health = broken  # type: ignore[union-attr]
    with caplog.at_level(logging.ERROR, logger="shimeji.health"):
        status, body = get(server, "/livez")
    assert status == 503
    assert json.loads(body) == {"error": "health check failed: RuntimeError"}
    server._server.health = lambda: state[0]  # type: ignore[union-attr]
    assert get(server, "/livez")[0] == 200


def test_hostile_clients_get_an_answer_or_a_closed_socket_and_change_nothing(served):
    """Garbage, huge request lines, huge headers, binary junk and half requests:
    the server answers with an error or closes, and serves the next probe."""
    server, _ = served
    rng = random.Random(7)
    cases = [
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET " + b"/" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET /readyz HTTP/1.1\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n",
        b"GET /readyz HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(200)) + b"\r\n",
        b"GET /readyz\n\n",
        b"GET /readyz HTTP/9.9\r\n\r\n",
        b"\r\n\r\n",
        "GET /readyz\x1b[31m\u202e HTTP/1.1\r\n\r\n".encode(),
        *(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600))) for _ in range(40)),
    ]
    for data in cases:
        answer = raw(server, data)
        # A status line (to an HTTP/0.9 request, a bare body), or nothing.
        assert answer == b"" or re.match(rb"(HTTP/1\.0 )?[245]\d\d |\{", answer), answer
        assert len(answer) < 1000
        assert get(server, "/readyz")[0] == 200


def test_a_slow_client_is_dropped_and_others_are_served(served):
    """A client that opens connections and sends nothing does not stop other probes,
    and busy slots are freed when its request times out."""
    server, _ = served
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        began = time.monotonic()
        while get_or_none(server) != 200:  # slots free up as idle requests time out
            assert time.monotonic() - began < 15
            time.sleep(0.2)
    finally:
        for sock in idle:
            sock.close()


def get_or_none(server: HealthServer) -> int | None:
    try:
        return get(server, "/livez")[0]
    except OSError:
        return None


@pytest.mark.parametrize("text", ["8081", "host:", "host:port", "h:99999", ":-1", ""])
def test_a_bad_address_is_a_clear_error(text):
    """An address that is not host:port says so, naming what was given."""
    with pytest.raises(ConfigurationError, match="is not an address: give host:port"):
        parse_address(text)


def test_a_taken_port_is_a_clear_error(served):
    """Serving on a port already in use says which, and what to do."""
    server, _ = served
    with pytest.raises(ConfigurationError, match="choose another --health address"):
        HealthServer(lambda: READY, f"127.0.0.1:{server.port}").start()


def test_addresses_parse():
    """host:port, :port (every interface) and [v6]:port."""
    assert parse_address("127.0.0.1:8081") == ("127.0.0.1", 8081)
    assert parse_address(":8081") == ("0.0.0.0", 8081)
    assert parse_address("[::1]:8081") == ("::1", 8081)
