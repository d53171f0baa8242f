"""Talking HTTP to a ``shimeji run`` process, byte by byte: the helpers of the
HTTP tests on the broker."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

from .processes import ServiceProcess

__all__ = ["QUEUES", "SERVICES", "Served", "chunked", "post_size", "read_answer", "write_config"]

SERVICES = "tests.amqp.http_gateway"
QUEUES = ("rpc-http_backend",)


def write_config(path: Path, amqp_uri: str, exchange: str, port: int, **extra: object) -> Path:
    lines = [
        f"AMQP_URI: {amqp_uri}",
        f"rpc_exchange: {exchange}",
        "RPC_TIMEOUT: 10",
        f"WEB_SERVER_ADDRESS: 127.0.0.1:{port}",
    ]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Served:
    """A ``shimeji run`` process serving the gateway on ``port``."""

    def __init__(self, process: ServiceProcess, port: int) -> None:
        self.process = process
        self.port = port

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            got = conn.getresponse()
            return got.status, dict(got.getheaders()), got.read()
        finally:
            conn.close()

    def assert_serving(self) -> None:
        status, _, body = self.request("GET", "/hello/again")
        assert (status, body) == (200, b'{"greeting": "hello again", "context": {}}'), body

    def raw(
        self, data: bytes, *, end: bool = True, timeout: float = 10
    ) -> tuple[int | None, bytes]:
        """Send ``data`` on a new connection (then end it, unless ``end`` is
        False) and read the answer: ``(status, body)``, ``(None, b"")`` when the
        server closed the connection without one."""
        with self.connect(timeout) as sock:
            try:
                sock.sendall(data)
                if end:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:  # the server closed on us mid-send: an answer may be waiting
                pass
            return read_answer(sock)


def read_answer(sock: socket.socket) -> tuple[int | None, bytes]:
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
    except (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine):
        return None, b""
    try:
        return response.status, response.read()
    except (ConnectionResetError, http.client.IncompleteRead) as exc:
        return response.status, getattr(exc, "partial", b"")


def chunked(body: bytes, size: int = 8192) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return framed + b"0\r\n\r\n"


def post_size(served: Served, body: bytes, *, chunk: bool) -> tuple[int | None, bytes]:
    if chunk:
        head = b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        data = head + chunked(body)
    else:
        head = b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        data = head + body
    return served.raw(data, end=False)
