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
- a request body over ``WEB_MAX_BODY_SIZE`` is answered 413, a client that
  takes longer than ``WEB_TIMEOUT`` to send its request 408; malformed
  requests get cheroot's 400 and never reach a service;
- ``stop()`` stops accepting, lets the requests in hand finish, then returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from cheroot import wsgi
from werkzeug.wrappers import Request, Response

from shimeji.core.config import Settings
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.quoting import escape
from shimeji.core.web import HttpFront, WebServer

__all__ = ["HttpServer"]

log = logging.getLogger("shimeji.web")


class _ErrorLog:
    """cheroot's error log, sent to ``logging`` (bounded, escaped lines)."""

    def __call__(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        log.log(level, "http server: %s", escape(str(msg))[:500], exc_info=traceback)


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
        request = Request(environ)
        try:
            response, _, _ = self.front.handle(request, self._pick)
        except Exception:  # a bug of ours: never let it reach cheroot as a traceback
            log.exception("http: answering %s %s failed", request.method, escape(request.path))
            response = Response("Internal Server Error\n", status=500)
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
        server.error_log = _ErrorLog()
        try:
            server.prepare()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve HTTP on {host}:{port} (WEB_SERVER_ADDRESS): {exc}. Is another "
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
