"""The HTTP server of ``shimeji run``: the routes of every service in the process.

Served by cheroot (CherryPy's WSGI server: threaded, production-grade, a
public graceful stop, and it keeps header names with underscores, so a
``nameko.user_id`` header reaches the worker as on the simulator). Requests
go through ``HttpFront`` (core/web.py): a route picks its service, a replica
of it is chosen round-robin among those of this process that run.

- ``WEB_SERVER_ADDRESS`` (``[host:]port``, default ``0.0.0.0:8000``; port 0
  takes any free port, which ``address`` then gives);
- at most ``max_workers`` requests in hand at once (cheroot's threads; more
  wait in the listen queue);
- a request body over ``WEB_MAX_BODY_SIZE`` is answered 413 (said by its
  ``Content-Length`` or grown past it while a chunked body is read: the
  body's bytes count, not the chunks' framing), a client
  that takes longer than ``WEB_TIMEOUT`` to send its request 408; a request
  line and headers over ``MAX_HEADER_BYTES`` 414 or 413; malformed requests
  (control characters in the request line or headers among them) get 400
  and never reach a service;
- ``stop()`` stops accepting, lets the requests in hand finish, then returns.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from cheroot import wsgi
from cheroot.server import ChunkedRFile
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout
from werkzeug.wrappers import Request, Response

from shimeji.core.config import Settings
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.quoting import escape, log_error
from shimeji.core.web import HttpFront, WebServer

__all__ = ["MAX_HEADER_BYTES", "HttpServer"]

log = logging.getLogger("shimeji.web")

#: The most bytes a request line and headers may take together (as the 64 KiB
#: of headers nameko's eventlet server accepts): a longer URL is answered 414,
#: more headers 413, before anything of the request is handled.
MAX_HEADER_BYTES = 65_536


class _ErrorLog:
    """cheroot's error log, sent to ``logging`` (bounded, escaped lines)."""

    def __call__(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        exc = sys.exc_info()[1] if traceback else None
        if exc is None:
            log.log(level, "http server: %s", escape(str(msg), 500))
        else:  # its messages may quote the request: escaped too
            log_error(log, exc, "http server: %s", escape(str(msg), 500), level=level)


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_CHUNK_LINE = 4096  # the longest chunk-size line (with its extensions) or trailer line
_TRAILERS = 100  # the most trailer lines after the last chunk


class _Body:
    """The request body as the route reads it, from cheroot's input.

    A ``Content-Length`` body is cheroot's (which answers 413 itself when the
    length is over ``WEB_MAX_BODY_SIZE``). A chunked body is decoded here,
    strictly: a chunk size is hex digits only (cheroot would read ``-5`` as
    the last chunk and ``0x5`` as five, and take what follows for the next
    request), and the limit counts the body's bytes, not its framing. Over the
    limit is werkzeug's ``RequestEntityTooLarge`` (413), a read that times out
    ``RequestTimeout`` (408), a malformed chunk a ``ValueError`` and a client
    gone mid-body an ``OSError`` (both 400): see ``HttpFront.read_body``.
    """

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._raw = stream.rfile if isinstance(stream, ChunkedRFile) else None
        self._buffer = b""
        self._total = 0
        self.ended = False  # a read came to the body's end

    @property
    def chunked(self) -> bool:
        return self._raw is not None

    def read(self, size: int | None = None) -> bytes:
        try:
            if self._raw is None:
                data = self._stream.read(size)
                if not data:
                    self.ended = True
                return data
            return self._read_chunked(size)
        except TimeoutError:
            raise RequestTimeout() from None

    def _read_chunked(self, size: int | None) -> bytes:
        while not self.ended and (size is None or size < 0 or len(self._buffer) < size):
            self._buffer += self._next_chunk()
        if size is None or size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _line(self) -> bytes:
        assert self._raw is not None
        line = self._raw.readline(_CHUNK_LINE + 1)
        if not line:
            raise OSError("the client closed the connection in the middle of the body")
        if not line.endswith(b"\r\n"):
            raise ValueError("a chunk-size or trailer line is too long or not ended by CRLF")
        return line[:-2]

    def _next_chunk(self) -> bytes:
        assert self._raw is not None
        size_text = self._line().split(b";", 1)[0].rstrip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise ValueError("a chunk size is not a hexadecimal number")
        size = int(size_text, 16)
        if size == 0:
            for _ in range(_TRAILERS):
                if not self._line():
                    self.ended = True
                    return b""
            raise ValueError(f"more than {_TRAILERS} trailer lines")
        if self._total + size > self._limit:
            raise RequestEntityTooLarge()
        data = self._raw.read(size)
        if len(data) < size:
            raise OSError("the client closed the connection in the middle of a chunk")
        if self._raw.read(2) != b"\r\n":
            raise ValueError("a chunk is not followed by CRLF")
        self._total += size
        return data


class _Gateway(wsgi.Gateway_10):
    """cheroot's WSGI gateway, closing the connection when the answer says
    ``Connection: close`` (cheroot would otherwise read on, taking what is
    left of an unread body as the next request)."""

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
            self.req.close_connection = True
        return super().start_response(status, headers, exc_info)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _has_control_characters(environ: dict[str, Any]) -> bool:
    """Whether the request target as sent or a header (name or value) holds a
    control character (a tab aside), which HTTP forbids there and cheroot lets
    through (percent-escaped, in the target, they are the route's business)."""
    texts = [environ.get("REQUEST_URI", "")]  # as sent: percent-escapes are fine
    for key, value in environ.items():
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            texts.append(key)
            texts.append(value if isinstance(value, str) else "")
    return any(_CONTROL.search(text) for text in texts)


class HttpServer:
    """Serves the HTTP routes of the services of one process.

    ``pick(service)`` gives the ``WebServer`` of the next running replica of a
    service (None if none runs).
    """

    def __init__(
        self,
        settings: Settings,
        services: Iterable[tuple[str, type]],
        pick: Callable[[str], WebServer | None],
    ) -> None:
        self.settings = settings
        self.front = HttpFront(settings.web_max_body_size)
        for name, service_cls in services:
            self.front.add_service(name, service_cls)
        self._pick = pick
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] = settings.web_server_address

    @property
    def has_routes(self) -> bool:
        return bool(self.front.services)

    def add_service(self, name: str, service_cls: type) -> None:
        self.front.add_service(name, service_cls)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = _Body(environ["wsgi.input"], self.settings.web_max_body_size)
        environ["wsgi.input"] = body
        request = Request(environ)
        try:
            if _has_control_characters(environ):
                response = Response(
                    "Bad Request: control characters in the request line or headers\n",
                    status=400,
                    headers={"Connection": "close"},
                )
            else:
                response, _, _ = self.front.handle(request, self._pick)
        except Exception as exc:  # a bug of ours: never let it reach cheroot as a traceback
            log_error(
                log,
                exc,
                "http: answering %s %s failed",
                escape(request.method),
                escape(request.path),
            )
            response = Response("Internal Server Error\n", status=500)
        if body.chunked and not body.ended:
            # A chunked body left unread (no route took the request): cheroot
            # would take its chunks for the next request.
            response.headers["Connection"] = "close"
        return response(environ, start_response)

    def start(self) -> None:
        """Bind and serve in a thread; ``ConfigurationError`` if the address is taken."""
        host, port = self.settings.web_server_address
        server = wsgi.Server(
            (host, port),
            self.app,
            numthreads=self.settings.max_workers,
            timeout=int(max(1, round(self.settings.web_timeout))),
            shutdown_timeout=5,
            server_name="shimeji",
        )
        server.max_request_body_size = self.settings.web_max_body_size
        server.max_request_header_size = MAX_HEADER_BYTES
        server.gateway = _Gateway
        server.error_log = _ErrorLog()
        try:
            server.prepare()
        except OSError as exc:
            # cheroot words it "No socket could be created -- ((host, port): [Errno 98]
            # Address already in use)": the system's reason is what tells.
            found = re.search(r"\[Errno \d+\] ([^)]*)", str(exc))
            reason = found.group(1) if found else str(exc)
            raise ConfigurationError(
                f"cannot serve HTTP on {host}:{port} (WEB_SERVER_ADDRESS): {reason}. Is another "
                "program using that port? Stop it, or set WEB_SERVER_ADDRESS to a free one"
            ) from None
        bound = server.bind_addr
        self.address = (bound[0], bound[1]) if isinstance(bound, tuple) else (host, port)
        self._server = server
        self._thread = threading.Thread(target=server.serve, name="shimeji-http", daemon=True)
        self._thread.start()
        log.info("serving HTTP on %s:%s", *self.address)

    def stop(self) -> None:
        """Stop accepting; requests in hand finish first."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __repr__(self) -> str:
        state = "serving" if self._server is not None else "stopped"
        return f"<HttpServer {self.address[0]}:{self.address[1]} {state}>"
