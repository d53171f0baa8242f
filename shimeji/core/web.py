"""HTTP entrypoints: nameko's ``@http``, and the front that routes requests to them.

A service method decorated ``@http(method, url)`` answers HTTP requests whose
path matches ``url`` (werkzeug's routing syntax: ``/orders/<int:order_id>``;
several methods as ``"GET,POST"``). It receives the werkzeug ``Request``
first and the URL's variables as keyword arguments, and returns a string, a
``(status, body)`` or ``(status, headers, body)`` tuple, or a werkzeug
``Response``.

Errors are answered as nameko answers them: an exception listed in
``expected_exceptions`` (or a ``BadRequest``, such as wrong URL variables)
with 400 and ``Error: <type>: <message>``, any other with 500, logged. An
exception with an integer ``status_code`` attribute (nameko's documented
``HttpError`` pattern) is answered with that status and a JSON body
``{"error": ..., "message": ...}``. Subclass ``HttpRequestHandler`` and
override ``response_from_exception`` (or ``response_from_result``) to answer
otherwise, as in nameko.

Context data comes from request headers named ``nameko.<key>``: a call made
from the route carries it on. Header names cannot tell ``_`` from ``-`` on
their way through a WSGI server, so ``nameko.user_id`` and
``nameko.user-id`` both give the key ``user_id``.

``HttpFront`` is what sits before the replicas, on both transports: it
matches a request against the routes of every service, refuses what no
route takes (404, 405) and bodies over ``WEB_MAX_BODY_SIZE`` (413), picks a
replica of the service round-robin, and answers 503 when none runs and 502
when the replica died with the request in hand, as a load balancer in front
of real servers would.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from shimeji.core.config import parse_address
from shimeji.core.container import ExcInfo, WorkerContext
from shimeji.core.exceptions import (
    BadRequest,
    ConfigurationError,
    ContainerBeingKilled,
    serialize,
)
from shimeji.core.extensions import Entrypoint, SharedExtension, iter_entrypoints
from shimeji.core.quoting import escape, shorten

__all__ = [
    "HTTP_EXCHANGE",
    "ClientResponse",
    "HttpClient",
    "HttpFront",
    "HttpRequestHandler",
    "ReplicaGone",
    "WebServer",
    "check_routes",
    "http",
    "parse_address",
    "request_body",
    "web_servers",
]

log = logging.getLogger("shimeji.web")

#: The ``exchange`` of the messages that stand for HTTP requests and responses in
#: traces (they never cross a broker).
HTTP_EXCHANGE = "http"
HEADER_PREFIX = "nameko."
_TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class ReplicaGone(Exception):
    """The replica handling a request died before it answered (answered 502)."""


def _methods(method: Any) -> list[str]:
    if not isinstance(method, str) or not method.strip():
        raise ConfigurationError(
            f"@http: the method is an HTTP method such as 'GET' or 'GET,POST', got {method!r}"
        )
    methods = [part.strip().upper() for part in method.split(",")]
    for name in methods:
        if not name or not set(name) <= _TOKEN:
            raise ConfigurationError(
                f"@http: {name!r} in {method!r} is not an HTTP method (such as GET or POST)"
            )
    return methods


class WebServer(SharedExtension):
    """The routes of one replica: its HTTP entrypoints, and the requests in hand.

    Override ``context_data_from_headers`` to read context data differently.
    """

    def __init__(self) -> None:
        self._providers: dict[str, HttpRequestHandler] = {}
        self._lock = threading.Lock()
        self._pending: dict[int, Any] = {}  # id of a waiter -> waiter, while a worker runs
        self._next = 0

    def register_provider(self, provider: HttpRequestHandler) -> None:
        self._providers[provider.method_name] = provider

    def unregister_provider(self, provider: HttpRequestHandler) -> None:
        self._providers.pop(provider.method_name, None)

    def provider(self, method_name: str) -> HttpRequestHandler | None:
        return self._providers.get(method_name)

    def make_url_map(self) -> Map:
        """A werkzeug ``Map`` of this replica's routes (endpoint: the method name)."""
        return Map([provider.get_url_rule() for provider in self._providers.values()])

    def context_data_from_headers(self, request: Request) -> tuple[dict[str, Any], list[str]]:
        """Context data (headers ``nameko.<key>``; ``-`` read as ``_``) and the
        call id stack (``nameko.call_id_stack``: a JSON list or comma-separated)."""
        context: dict[str, Any] = {}
        stack: list[str] = []
        for name, value in request.headers.items():
            lowered = name.lower()
            if not lowered.startswith(HEADER_PREFIX):
                continue
            key = lowered[len(HEADER_PREFIX) :].replace("-", "_")
            if not key:
                continue
            if key == "call_id_stack":
                stack = _call_ids(value)
            else:
                context[key] = value
        return context, stack

    def track(self, waiter: Any) -> int:
        with self._lock:
            self._next += 1
            self._pending[self._next] = waiter
            return self._next

    def untrack(self, number: int) -> None:
        with self._lock:
            self._pending.pop(number, None)

    def kill(self) -> None:
        # Workers die with the replica and never answer: the requests waiting
        # for them are answered 502 by the front.
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        container = self.container
        name = container.replica_name if container is not None else "the replica"
        for waiter in pending:  # later answers are ignored by a waiter
            waiter.set_exception(ReplicaGone(f"{name} died handling the request"))


def _call_ids(value: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
    return [part.strip() for part in text.split(",") if part.strip()]


@functools.lru_cache(maxsize=1024)
def _route_variables(url: str, methods: tuple[str, ...]) -> frozenset[str]:
    """The variables of the route ``url``; werkzeug's error if it is not one.

    Binding a rule to a map parses it, and compiles code to build its urls:
    done once per route rather than for each copy of an entrypoint (every
    replica binds one) and again as each one starts."""
    rule = Rule(url, methods=list(methods), endpoint="-")
    Map([rule])
    return frozenset(rule.arguments)


class HttpRequestHandler(Entrypoint):
    """The entrypoint behind ``@http(method, url, expected_exceptions=())``."""

    web_server = WebServer()

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.method = method
        self.methods = _methods(method)
        if not isinstance(url, str) or not url.startswith("/"):
            raise ConfigurationError(f"@http: the url is a path starting with '/', got {url!r}")
        self.url = url
        try:
            _route_variables(url, tuple(self.methods))
        except (ValueError, LookupError) as exc:
            raise ConfigurationError(f"@http: {url!r} is not a valid route: {exc}") from None

    def get_url_rule(self) -> Rule:
        return Rule(self.url, methods=self.methods, endpoint=self.method_name or "-")

    def setup(self) -> None:
        container = self.container
        assert container is not None
        self._signature = self.method_signature(self.plain_method("@http"))
        variables = _route_variables(self.url, tuple(self.methods))
        try:
            self._signature.bind(None, None, **dict.fromkeys(variables))
        except TypeError:
            raise ConfigurationError(
                f"@http method {container.service_cls.__qualname__}.{self.method_name} must take "
                f"the request, then the url's variables {sorted(variables)} as arguments"
            ) from None
        self.web_server.register_provider(self)

    def stop(self) -> None:
        self.web_server.unregister_provider(self)

    def get_entrypoint_parameters(
        self, request: Request, values: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (request,), dict(values)

    def check_signature(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.bind_arguments(self._signature, args, kwargs)

    def handle_request(
        self, request: Request, values: Mapping[str, Any], correlation_id: str | None = None
    ) -> Response:
        """Run the method in a worker for ``request`` and answer with its result
        (or its error). ``ReplicaGone`` if the replica dies first."""
        container = self.container
        assert container is not None
        waiter = container.runtime.new_waiter(
            f"an HTTP response from {container.replica_name}.{self.method_name}"
        )
        number = self.web_server.track(waiter)
        try:
            try:
                context_data, parent_stack = self.web_server.context_data_from_headers(request)
                args, kwargs = self.get_entrypoint_parameters(request, values)
                self.check_signature(args, kwargs)
                container.spawn_worker(
                    self,
                    args,
                    kwargs,
                    context_data,
                    parent_stack,
                    partial(self.handle_result, waiter),
                    correlation_id=correlation_id,
                )
                result, exc_info = waiter.wait()
                if exc_info is not None:
                    raise exc_info[1]
                return self.response_from_result(result)
            except (ReplicaGone, ContainerBeingKilled):
                raise
            except Exception as exc:
                return self.response_from_exception(exc)
        finally:
            self.web_server.untrack(number)

    def handle_result(
        self, waiter: Any, worker_ctx: WorkerContext, result: Any, exc_info: ExcInfo | None
    ) -> tuple[Any, ExcInfo | None]:
        waiter.set_result((result, exc_info))  # ignored if the replica died meanwhile
        return result, exc_info

    def response_from_result(self, result: Any) -> Response:
        """A ``Response`` as is; a string (200), ``(status, body)`` or
        ``(status, headers, body)``; anything else is a ``TypeError`` (500)."""
        if isinstance(result, Response):
            return result
        headers = None
        if isinstance(result, tuple) and len(result) == 3:
            status, headers, payload = result
        elif isinstance(result, tuple) and len(result) == 2:
            status, payload = result
        else:
            status, payload = 200, result
        if not isinstance(payload, str):
            raise TypeError(
                f"Payload must be a string. Got `{shorten(repr(payload))}`: return a str, "
                "(status, body), (status, headers, body) or a werkzeug Response (for JSON, "
                "json.dumps the value)"
            )
        return Response(payload, status=status, headers=headers)

    def response_from_exception(self, exc: BaseException) -> Response:
        """400 for expected exceptions and bad requests, the exception's own
        ``status_code`` (with a JSON body) where it has one, else 500."""
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
            error = getattr(exc, "error_code", None) or type(exc).__name__
            body = json.dumps({"error": str(error), "message": str(exc)})
            return Response(body, status=status, mimetype="application/json")
        code = 400 if isinstance(exc, (*self.expected_exceptions, BadRequest)) else 500
        error = serialize(exc)
        return Response(f"Error: {error['exc_type']}: {error['value']}\n", status=code)


http = HttpRequestHandler.decorator


def _answer(status: int, text: str) -> Response:
    return Response(f"{text}\n", status=status)


class HttpFront:
    """Routes requests to the HTTP entrypoints of several services.

    ``add_service(cls)`` adds a service's routes (two services claiming the same
    route and method is a ``ConfigurationError``). ``handle(request, pick)``
    answers a request: ``pick(service_name)`` gives the next replica's
    ``WebServer`` to use (None if none runs).
    """

    def __init__(self, max_body_size: int) -> None:
        self.max_body_size = max_body_size
        self._rules: list[Rule] = []
        self._owners: dict[tuple[str, str], str] = {}  # (path, method) -> service.method
        self._services: dict[str, None] = {}
        self._map = Map()

    @property
    def services(self) -> list[str]:
        return list(self._services)

    @property
    def routes(self) -> list[str]:
        """Every route taken, ``METHOD /url``, in the order they were added."""
        return [f"{method} {url}" for url, method in self._owners]

    def add_service(self, service_name: str, service_cls: type) -> bool:
        """Add the routes of a service (once); False if it has none."""
        if service_name in self._services:
            return True
        handlers = [
            (name, template)
            for name, template in iter_entrypoints(service_cls)
            if isinstance(template, HttpRequestHandler)
        ]
        if not handlers:
            return False
        rules = []
        for name, template in handlers:
            for method in template.methods:
                owner = self._owners.get((template.url, method))
                if owner is not None:
                    raise ConfigurationError(
                        f"@http {method} {template.url} is claimed by {owner} and by "
                        f"{service_name}.{name}: a route belongs to one method"
                    )
            endpoint = (service_name, name)
            rules.append(Rule(template.url, methods=template.methods, endpoint=endpoint))
        for name, template in handlers:
            for method in template.methods:
                self._owners[(template.url, method)] = f"{service_name}.{name}"
        self._rules.extend(rules)
        self._services[service_name] = None
        self._map = Map([rule.empty() for rule in self._rules])
        return True

    def match(self, request: Request) -> tuple[str, str, dict[str, Any]]:
        """``(service, method name, url variables)``; raises werkzeug's
        ``HTTPException`` (404, 405, a redirect) when no route takes it."""
        adapter = self._map.bind_to_environ(request.environ)
        (service, method), values = adapter.match()
        return service, method, values

    def read_body(self, request: Request) -> Response | None:
        """Read the body within ``max_body_size``; an answer if it cannot be read.

        A body over the limit is answered 413, whether its ``Content-Length``
        says so or a chunked body grows past it while it is read; a body that
        breaks off or is malformed (a bad chunk size) 400, one that stalls past
        the server's timeout 408. Each of these answers closes the connection:
        what is left of the body on it is never read as a next request.
        """
        # Without a Content-Length (a chunked body) werkzeug stops reading at its
        # limit without a word when the limit falls on a chunk's end: read one byte
        # more than allowed, to know.
        limit = self.max_body_size
        request.max_content_length = limit if request.content_length is not None else limit + 1
        try:
            if len(request.get_data(cache=True)) > limit:
                raise RequestEntityTooLarge()
        except RequestEntityTooLarge:
            answer = _answer(
                413,
                f"Request Entity Too Large: the body is over {self.max_body_size} bytes "
                "(WEB_MAX_BODY_SIZE)",
            )
        except HTTPException as exc:  # ClientDisconnected (400), RequestTimeout (408)...
            status = exc.code if isinstance(exc.code, int) and exc.code >= 400 else 400
            answer = _answer(status, f"{exc.name}: the request body could not be read")
        except (OSError, ValueError) as exc:  # a server whose input raises its own errors
            answer = _answer(
                400, f"Bad Request: the request body could not be read ({escape(str(exc))})"
            )
        else:
            return None
        answer.headers["Connection"] = "close"
        return answer

    def handle(
        self,
        request: Request,
        pick: Callable[[str], WebServer | None],
        correlation_id: str | None = None,
    ) -> tuple[Response, str | None, str | None]:
        """Answer ``request``: ``(response, service, method)`` (service and method
        None when no route took it)."""
        try:
            service, method, values = self.match(request)
        except HTTPException as exc:
            return exc.get_response(request.environ), None, None  # type: ignore[return-value]
        too_large = self.read_body(request)
        if too_large is not None:
            return too_large, service, method
        server = pick(service)
        provider = server.provider(method) if server is not None else None
        if provider is None:
            return (
                _answer(503, f"Service Unavailable: no replica of {service} is running"),
                (service),
                method,
            )
        try:
            return provider.handle_request(request, values, correlation_id), service, method
        except (ReplicaGone, ContainerBeingKilled) as exc:
            text = escape(str(exc))
            return _answer(502, f"Bad Gateway: {text}"), service, method


def check_routes(services: Iterable[tuple[str, type]], name: str, service_cls: type) -> None:
    """``ConfigurationError`` if ``service_cls`` claims a route one of ``services``
    (``(name, class)``, each checked by this as it was added) has already."""
    if not any(isinstance(t, HttpRequestHandler) for _, t in iter_entrypoints(service_cls)):
        return  # no route of its own: none to clash (and the others' were checked)
    front = HttpFront(0)
    for other_name, other_cls in services:
        front.add_service(other_name, other_cls)
    front.add_service(name, service_cls)


def web_servers(containers: Iterable[Any]) -> list[WebServer]:
    """The ``WebServer`` of each container that has one."""
    found = []
    for container in containers:
        for extension in container.shared_extensions.values():
            if isinstance(extension, WebServer):
                found.append(extension)
                break
    return found


# -- the client side: what tests see -------------------------------------------------


class ClientResponse:
    """An HTTP response as a test client sees it (requests-like): ``status_code``,
    ``headers`` (case-insensitive), ``content`` (bytes), ``text``, ``json()``."""

    def __init__(self, status_code: int, headers: Iterable[tuple[str, str]], content: bytes):
        from werkzeug.datastructures import Headers

        self.status_code = status_code
        self.headers = Headers(list(headers))
        self.content = content

    @classmethod
    def from_response(cls, response: Response, environ: Mapping[str, Any]) -> ClientResponse:
        """What a client receives of ``response`` to the request ``environ``
        (as a WSGI server sends it: no body for HEAD, for instance)."""
        env = dict(environ)
        content = b"".join(response.get_app_iter(env))
        return cls(response.status_code, response.get_wsgi_headers(env).items(), content)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 400

    @property
    def text(self) -> str:
        from werkzeug.http import parse_options_header

        _, options = parse_options_header(self.headers.get("Content-Type", ""))
        return self.content.decode(options.get("charset", "utf-8"), errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<ClientResponse [{self.status_code}]>"


class HttpClient:
    """``get``, ``post``, ``put``, ``patch``, ``delete``, ``head``, ``options``:
    each ``(url, headers=None, json=None, data=None, params=None)``, through
    ``request(method, url, ...)``, which transports implement."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> ClientResponse:
        raise NotImplementedError

    def get(self, url: str, **kwargs: Any) -> ClientResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> ClientResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> ClientResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> ClientResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> ClientResponse:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> ClientResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> ClientResponse:
        return self.request("OPTIONS", url, **kwargs)


def request_body(
    headers: Mapping[str, str] | None, json_value: Any, data: bytes | str | None
) -> tuple[dict[str, str], bytes]:
    """Headers and body bytes of a client request (``json`` or ``data``, not both)."""
    out = dict(headers or {})
    if json_value is not None and data is not None:
        raise ValueError("give json or data, not both")
    if json_value is not None:
        if not any(key.lower() == "content-type" for key in out):
            out["Content-Type"] = "application/json"
        return out, json.dumps(json_value).encode()
    if isinstance(data, str):
        return out, data.encode()
    return out, data or b""
