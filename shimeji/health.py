"""Liveness and readiness over HTTP, for process supervisors and Kubernetes probes.

    shimeji run services --health 0.0.0.0:8081

- ``GET /livez``: 200 while the process works (every replica's consumer loop
  goes round; nothing has failed for good), 503 otherwise: restart it.
- ``GET /readyz``: 200 while every replica consumes its queue, 503 while
  it connects, reconnects or stops: send it no work.
- ``GET /healthz``: 200 only when both hold.

Each answer's body is the JSON of ``ServiceRunner.health()``. Anything else
gets 404 (another path) or 405 (another method). The server is small on
purpose: it reads no body, answers within a timeout, serves a bounded number
of connections at once, and its failures never touch the services.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shimeji.core.exceptions import ConfigurationError
from shimeji.core.quoting import escape

__all__ = ["HealthServer", "parse_address"]

log = logging.getLogger("shimeji.health")

#: Seconds a client has to send its request before it is dropped.
REQUEST_TIMEOUT = 5.0
#: Connections served at once; more are closed at once.
MAX_CONNECTIONS = 16


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` (or ``":port"``, any interface) as ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigurationError(
            f"{escape(text)!r} is not an address: give host:port, such as 0.0.0.0:8081"
        )
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    server_version = "shimeji-health"
    sys_version = ""
    error_message_format = "%(code)d %(message)s\n"
    error_content_type = "text/plain; charset=utf-8"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout
        super().setup()

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/livez", "/readyz", "/healthz"):
            self._send(404, {"error": "not found: use /livez, /readyz or /healthz"}, body)
            return
        try:
            health = self.server.health().as_dict()
        except Exception as exc:  # never let a probe crash the server
            log.exception("health check failed")
            self._send(503, {"error": f"health check failed: {type(exc).__name__}"}, body)
            return
        ok = {
            "/livez": health["live"],
            "/readyz": health["ready"],
            "/healthz": health["live"] and health["ready"],
        }[path]
        self._send(200 if ok else 503, health, body)

    def _send(self, status: int, payload: dict[str, Any], body: bool) -> None:
        data = json.dumps(payload, sort_keys=True).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server quotes the request line in its errors: keep it short and inert.
        super().send_error(code, escape(message, 100) if message else None, None)

    def _refuse(self) -> None:
        self.send_error(405, "only GET and HEAD are allowed")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines come from the network: one short, escaped line at DEBUG.
        log.debug("%s %s", self.address_string(), escape(format % args))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], health: Callable[[], Any], request_timeout: float
    ) -> None:
        self.health = health
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: a probe tries again
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class HealthServer:
    """Serves ``health()`` (a ``shimeji.runner.Health``) on ``address`` in a thread;
    a client has ``request_timeout`` seconds to send its request."""

    def __init__(
        self, health: Callable[[], Any], address: str, request_timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self._health = health
        self._request_timeout = request_timeout
        self._wanted = parse_address(address)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (useful when asked for port 0)."""
        assert self._server is not None, "start() it first"
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        """Listen; ``ConfigurationError`` if the address cannot be used."""
        host, port = self._wanted
        try:
            self._server = _Server((host, port), self._health, self._request_timeout)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve health checks on {host}:{port}: {exc.strerror or exc}; "
                "choose another --health address"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="shimeji-health", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
