"""``shimeji run`` serving HTTP, each test with a process of its own: the
default body limit, a taken port, SIGTERM with a request in flight."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from .broker import clean_broker
from .http_client import QUEUES, SERVICES, Served, post_size, read_answer, write_config
from .processes import ServiceProcess, free_port, shimeji


@pytest.fixture
def exchange(broker_uri: str) -> Iterator[str]:
    name = f"shimeji-http-{uuid.uuid4().hex[:10]}"
    yield name
    clean_broker(broker_uri, *QUEUES, exchange=name)


def test_the_default_body_limit_is_one_mib(broker_uri, exchange, tmp_path):
    """Without WEB_MAX_BODY_SIZE, 1,048,576 bytes are accepted and one more is 413."""
    port = free_port()
    config = write_config(tmp_path / "config.yaml", broker_uri, exchange, port)
    process = ServiceProcess(SERVICES, config=config)
    try:
        process.wait_ready()
        served = Served(process, port)
        for chunk in (False, True):
            status, body = post_size(served, b"x" * 1_048_576, chunk=chunk)
            assert (status, body) == (200, b'{"size": 1048576}')
            status, _ = post_size(served, b"x" * 1_048_577, chunk=chunk)
            assert status == 413
    finally:
        assert process.stop() == 0


def test_max_workers_bounds_the_requests_in_hand(broker_uri, exchange, tmp_path):
    """With max_workers 2, six slow requests at once all get their answer, but
    never more than two run at a time: the others wait their turn."""
    port = free_port()
    config = write_config(tmp_path / "config.yaml", broker_uri, exchange, port, max_workers=2)
    process = ServiceProcess(SERVICES, config=config)
    try:
        process.wait_ready()
        served = Served(process, port)
        answers: list = []
        threads = [
            threading.Thread(target=lambda: answers.append(served.request("GET", "/busy/0.4")))
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert [(status, body) for status, _, body in answers] == [(200, b"done")] * 6
        status, _, body = served.request("GET", "/busiest")
        assert (status, body) == (200, b"2")
    finally:
        assert process.stop() == 0


def test_clients_stalling_mid_request_hold_a_thread_each_until_web_timeout(
    broker_uri, exchange, tmp_path
):
    """A client that sent half its request holds one of the max_workers threads
    until WEB_TIMEOUT: with as many stalled clients as threads, a normal
    request waits for them to time out (then it is served). Hence the advice
    of docs/production.md: a buffering proxy in front, or more max_workers."""
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml", broker_uri, exchange, port, max_workers=2, WEB_TIMEOUT=3
    )
    process = ServiceProcess(SERVICES, config=config)
    try:
        process.wait_ready()
        served = Served(process, port)
        served.assert_serving()
        stalled = [served.connect() for _ in range(2)]
        for sock in stalled:
            sock.sendall(b"GET /hello/slow HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)
        started = time.monotonic()
        served.assert_serving()
        waited = time.monotonic() - started
        for sock in stalled:
            assert read_answer(sock)[0] in (None, 408)
            sock.close()
    finally:
        assert process.stop() == 0
    assert waited > 1.5, f"served after {waited:.2f}s: the stalled clients held no thread"


def test_a_taken_port_is_a_one_line_error(broker_uri, exchange, tmp_path):
    """WEB_SERVER_ADDRESS on a port another program listens on: shimeji run says
    so in one line naming the setting, and exits 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "config.yaml", broker_uri, exchange, port)
        proc = shimeji("run", SERVICES, "--config", str(config), stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == [
        f"shimeji run: error: cannot serve HTTP on 127.0.0.1:{port} (WEB_SERVER_ADDRESS): "
        "Address already in use. Is another program using that port? Stop it, "
        "or set WEB_SERVER_ADDRESS to a free one"
    ], err
    assert "Traceback" not in err


def test_sigterm_lets_a_request_in_flight_finish_and_refuses_new_ones(
    broker_uri, exchange, tmp_path
):
    """SIGTERM with a request in flight (sleeping, then calling the backend):
    new connections are refused at once, the request in flight is answered in
    full, and the process exits 0 soon after."""
    port = free_port()
    config = write_config(tmp_path / "config.yaml", broker_uri, exchange, port)
    process = ServiceProcess(SERVICES, config=config)
    served = Served(process, port)
    try:
        process.wait_ready()
        served.assert_serving()
        answer: list = []
        thread = threading.Thread(
            target=lambda: answer.append(served.request("GET", "/sleep/2.0")), daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not any("sleeping 2.0 s" in line for line in process.lines):
            assert time.monotonic() < deadline, "".join(process.lines)
            time.sleep(0.02)
        signalled = time.monotonic()
        process.proc.terminate()
        refused = False
        while time.monotonic() < signalled + 1.5:
            try:
                with served.connect(timeout=1) as sock:
                    sock.sendall(b"GET /hello/late HTTP/1.1\r\nHost: x\r\n\r\n")
                    if read_answer(sock)[0] is None:
                        refused = True
                        break
            except ConnectionRefusedError:
                refused = True
                break
            time.sleep(0.05)
        assert refused, "new connections were still served after SIGTERM"
        code = process.wait(timeout=20)
        thread.join(5)
    finally:
        process.stop()
    assert code == 0, "".join(process.lines)
    assert answer == [(200, answer[0][1], b'{"greeting": "hello after 2.0", "context": {}}')], (
        answer
    )


def test_readiness_waits_for_the_http_routes(broker_uri, exchange, monkeypatch):
    """/readyz must not say ready while the routes are not served yet: a
    balancer would send requests to a closed port. The runner reports ready
    only once everything it starts (replicas, then the HTTP server) is up."""
    from shimeji.http_server import HttpServer
    from shimeji.runner import ServiceRunner

    from .http_gateway import Backend, Gateway

    seen: list[bool] = []
    start = HttpServer.start

    def start_and_look(server: HttpServer) -> None:
        seen.append(runner.health().ready)  # every replica consumes by now
        start(server)

    monkeypatch.setattr(HttpServer, "start", start_and_look)
    port = free_port()
    runner = ServiceRunner(
        {
            "AMQP_URI": broker_uri,
            "rpc_exchange": exchange,
            "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        }
    )
    runner.add_service(Backend)
    runner.add_service(Gateway)
    with runner:
        assert runner.health().ready
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    assert seen == [False]
    assert set(runner.health().replicas) == {"http_backend-1", "http_gateway-1"}
