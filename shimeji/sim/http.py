"""HTTP on the simulator: a test client and the front before the replicas.

``SimCluster.http`` sends a request in virtual time. The front (``HttpFront``)
matches it against the routes of every service the cluster runs; a request
no route takes is answered 404 or 405 at once, a body over
``WEB_MAX_BODY_SIZE`` 413. Otherwise the request takes ``latency`` to reach a
replica of the route's service, chosen round-robin among those running (503
if none runs), which handles it in a worker; the response takes ``latency``
back. A replica that dies with the request in hand is answered 502 by the
front, as a load balancer answers for a backend whose connection dropped.

In the trace an HTTP request is a call: ``publish`` by the client ``http``,
``deliver`` to the replica, ``reply``, ``deliver`` back (their messages have
the exchange ``http``, the method and path in ``headers``, the status in the
response's), or an ``http_refused`` note when the front answered itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from werkzeug.exceptions import HTTPException
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from shimeji.core.events import Event
from shimeji.core.exceptions import ContainerBeingKilled
from shimeji.core.registry import RoundRobin
from shimeji.core.transport import Message
from shimeji.core.web import (
    HTTP_EXCHANGE,
    ClientResponse,
    HttpClient,
    HttpFront,
    ReplicaGone,
    request_body,
    web_servers,
)

if TYPE_CHECKING:
    from shimeji.sim.cluster import SimCluster
    from shimeji.sim.replica import SimReplica

__all__ = ["SimHttpClient"]

#: The trace label of the HTTP client.
LABEL = "http"


def _request_message(request: Request, service: str, method: str, corr: str) -> Message:
    headers: dict[str, Any] = {"method": request.method, "path": request.full_path.rstrip("?")}
    for name, value in request.headers.items():
        if name.lower().startswith("nameko."):
            headers["nameko." + name[len("nameko.") :].lower().replace("-", "_")] = value
    return Message(
        body=request.get_data(cache=True),
        routing_key=f"{service}.{method}",
        exchange=HTTP_EXCHANGE,
        content_type=request.mimetype or None,
        headers=headers,
        reply_to=LABEL,
        correlation_id=corr,
    )


def _response_message(response: Response, corr: str) -> Message:
    return Message(
        body=response.get_data(),
        routing_key=LABEL,
        exchange=HTTP_EXCHANGE,
        content_type=response.mimetype or None,
        headers={"status": response.status_code},
        correlation_id=corr,
    )


@attrs.frozen
class _Exchange:
    """One request on its way through the front: what each step needs of it."""

    request: Request
    corr: str
    service: str | None  # None: no route took it
    name: str | None
    values: dict[str, Any]
    waiter: Any


class SimHttpClient(HttpClient):
    """Requests to the cluster's HTTP routes, in virtual time (see the module)."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self._turns = RoundRobin()
        # The front for the services the cluster had at the last request: its
        # routes are compiled once, not at each request, until a service is added.
        self._routed: tuple[tuple[str, type], ...] = ()
        self._routes: HttpFront | None = None

    def _front(self) -> HttpFront:
        services = tuple(
            (name, self.cluster.replicas(name)[0].service_cls) for name in self.cluster.services
        )
        if self._routes is None or services != self._routed:
            front = HttpFront(self.cluster.settings.web_max_body_size)
            for name, service_cls in services:
                front.add_service(name, service_cls)
            self._routed, self._routes = services, front
        return self._routes

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
        cluster = self.cluster
        cluster._require_running("send HTTP requests")
        out_headers, body = request_body(headers, json, data)
        environ = EnvironBuilder(
            path=url,
            method=method.upper(),
            headers=list(out_headers.items()),
            data=body,
            query_string=dict(params) if params else None,
        ).get_environ()
        return ClientResponse.from_response(self.exchange(Request(environ), url), environ)

    def exchange(self, request: Request, url: str | None = None) -> Response:
        """Send ``request`` through the front, in virtual time; its response.
        (``url`` names it in stall reports; by default its path.)"""
        cluster = self.cluster
        environ = request.environ
        if url is None:
            url = request.full_path.rstrip("?")
        front = self._front()
        scheduler = cluster.scheduler
        corr = scheduler.new_id()
        waiter = scheduler.new_waiter(f"the HTTP response to {request.method} {url}")
        try:
            service, name, values = front.match(request)
        except HTTPException as exc:
            response: Response = exc.get_response(environ)  # type: ignore[assignment]
            self._refused(_Exchange(request, corr, None, None, {}, waiter), response)
            return response
        exchange = _Exchange(request, corr, service, name, values, waiter)
        too_large = front.read_body(request)
        if too_large is not None:
            self._answer_from_front(exchange, too_large)
            return waiter.wait()  # type: ignore[no-any-return]
        cluster.tracer.emit(
            Event(
                kind="publish",
                replica=LABEL,
                service=service,
                method=name,
                correlation_id=corr,
                message=_request_message(request, service, name, corr),
            )
        )
        scheduler.call_later(cluster.bus.latency_us / 1e6, self._arrive, exchange)
        return waiter.wait()  # type: ignore[no-any-return]

    # -- the front, in virtual time ----------------------------------------------------

    def _arrive(self, exchange: _Exchange) -> None:
        assert exchange.service is not None and exchange.name is not None
        replica = self._pick(exchange.service)
        if replica is None:
            response = Response(
                f"Service Unavailable: no replica of {exchange.service} is running\n", 503
            )
            self._answer_from_front(exchange, response)
            return
        self.cluster.tracer.emit(
            Event(
                kind="deliver",
                replica=replica.name,
                service=exchange.service,
                method=exchange.name,
                correlation_id=exchange.corr,
                message=_request_message(
                    exchange.request, exchange.service, exchange.name, exchange.corr
                ),
            )
        )
        self.cluster.scheduler.spawn(self._serve, replica, exchange, name=f"{replica.name}:http")

    def _pick(self, service: str) -> SimReplica | None:
        running = [
            replica
            for replica in self.cluster.replicas(service)
            if replica.alive
            and replica.container is not None
            and replica.container.state == "running"
        ]
        return self._turns.pick(service, running)

    def _serve(self, replica: SimReplica, exchange: _Exchange) -> None:
        assert exchange.name is not None
        servers = web_servers([replica.container]) if replica.container is not None else []
        provider = servers[0].provider(exchange.name) if servers else None
        if provider is None:  # stopped between the pick and now
            response = Response(f"Service Unavailable: {replica.name} is stopping\n", 503)
            self._answer_from_front(exchange, response)
            return
        try:
            response = provider.handle_request(exchange.request, exchange.values, exchange.corr)
        except (ReplicaGone, ContainerBeingKilled) as exc:
            self._answer_from_front(exchange, Response(f"Bad Gateway: {exc}\n", 502))
            return
        message = _response_message(response, exchange.corr)
        self.cluster.tracer.emit(
            Event(
                kind="reply",
                replica=replica.name,
                service=exchange.service,
                method=exchange.name,
                correlation_id=exchange.corr,
                message=message,
            )
        )
        self.cluster.scheduler.call_later(
            self.cluster.bus.latency_us / 1e6, self._respond, exchange, response, message
        )

    def _respond(self, exchange: _Exchange, response: Response, message: Message) -> None:
        self.cluster.tracer.emit(
            Event(
                kind="deliver",
                replica=LABEL,
                service=exchange.service,
                method=exchange.name,
                correlation_id=exchange.corr,
                message=message,
            )
        )
        exchange.waiter.set_result(response)

    def _answer_from_front(self, exchange: _Exchange, response: Response) -> None:
        def answer() -> None:
            self._refused(exchange, response)
            exchange.waiter.set_result(response)

        self.cluster.scheduler.call_later(self.cluster.bus.latency_us / 1e6, answer)

    def _refused(self, exchange: _Exchange, response: Response) -> None:
        status = response.status
        first_line = response.get_data(as_text=True).strip().splitlines()
        why = first_line[0] if first_line and not first_line[0].startswith("<") else status
        self.cluster.tracer.emit(
            Event(
                kind="http_refused",
                replica=LABEL,
                service=exchange.service,
                method=exchange.name,
                correlation_id=exchange.corr,
                detail=f"{exchange.request.method} {exchange.request.full_path.rstrip('?')}: "
                f"{status}" + (f" ({why})" if why != status else ""),
            )
        )

    def __repr__(self) -> str:
        return f"<SimHttpClient of {self.cluster!r}>"
