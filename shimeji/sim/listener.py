"""A real HTTP listener in front of a SimCluster's routes.

nameko's tests may call a service's ``@http`` route over a real socket, at
the ``WEB_SERVER_ADDRESS`` of ``web_config`` (a worker of another service
doing ``requests.get(...)``, say). ``RealHttpListener`` listens there, on a
daemon thread, and answers each request with the cluster's routes:

- in virtual time, when the simulation's thread takes the request within
  ``grace`` real seconds (``GRACE`` by default; it takes it when it is
  idle, waiting for the outside, or soon is): the request goes through the
  simulated front (``SimHttpClient.exchange``) in a task of its own, traced
  as any request is;
- otherwise the simulation's thread is busy, most likely blocked in the very
  real call that made this request (a worker calling a route of the same
  test): the route's worker then runs here, on the listener's thread,
  outside virtual time (its trace steps stamped with a clock that does not
  move) and beside the replica's ``max_workers``. Code in it that waits for
  the simulation (an RPC, say) fails with ``OutsideVirtualTime``, answered
  500, rather than deadlock.

Opening the listener changes nothing; each request that arrives on it is
reported as an uncontrolled effect (``cluster.uncontrolled``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from shimeji.core.container import ExcInfo, WorkerContext
from shimeji.core.web import web_servers
from shimeji.sim.bridge import OutsideClosed
from shimeji.sim.entropy import start_unreported

if TYPE_CHECKING:
    from shimeji.sim.cluster import SimCluster

__all__ = ["GRACE", "RealHttpListener"]

log = logging.getLogger("shimeji.sim")

#: How long (real seconds) a request waits for the simulation's thread to take
#: it before its route runs on the listener's thread instead.
GRACE = 0.2


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler, without its access log (it would set up the
    ``werkzeug`` logger of the process on first use)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class RealHttpListener:
    """Answers HTTP on ``host:port`` (0: a free port) with ``cluster``'s routes
    (a callable giving the cluster: a test's may be replaced by a rerun).

    ``grace`` is how long (real seconds) a request waits for the simulation's
    thread to take it before its route runs on the listener's thread. Call
    ``close()`` when done (or use it as a context manager): it stops listening
    and frees the port."""

    def __init__(
        self,
        cluster: SimCluster | Callable[[], SimCluster],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        grace: float = GRACE,
    ) -> None:
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not grace >= 0:
            raise ValueError(f"RealHttpListener: grace is real seconds >= 0, got {grace!r}")
        self._cluster = cluster
        self.grace = float(grace)
        self.closed = False
        self._server: BaseWSGIServer = make_server(
            host, port, self._app, threaded=True, request_handler=_QuietHandler
        )
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"shimeji:http-listener:{self.port}",
            daemon=True,
        )
        start_unreported(self._thread)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def cluster(self) -> SimCluster:
        cluster = self._cluster
        return cluster() if callable(cluster) else cluster

    def close(self) -> None:
        """Stop listening and free the port (requests being answered are abandoned:
        their threads are daemons). Closing again does nothing."""
        if self.closed:
            return
        self.closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> RealHttpListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- answering -------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        request.get_data(cache=True)  # read before the route runs on another thread
        try:
            response = self._answer(request)
        except Exception as exc:  # never leave a client without an answer
            log.exception("the HTTP listener on %s failed", self.address)
            response = Response(f"Internal Server Error: {exc!r}\n", 500)
        return response(environ, start_response)

    def _answer(self, request: Request) -> Response:
        cluster = self.cluster
        if cluster.state != "running":
            return Response(f"Service Unavailable: the cluster is {cluster.state}\n", 503)
        what = f"{request.method} {request.full_path.rstrip('?')}"
        report = cluster.scheduler.report_uncontrolled
        if report is not None:
            report(
                "network",
                f"an HTTP request ({what}) came from a real socket, to the listener on "
                f"{self.address}: it arrives in real time, outside the cluster's seed",
            )
        outside = cluster.scheduler.outside_inbox()
        token = outside.add_source(f"the HTTP request {what} on {self.address}")
        try:
            done = threading.Event()
            box: list[Response] = []

            def in_virtual_time() -> None:
                try:
                    box.append(cluster.http.exchange(request))
                except Exception as exc:
                    box.append(Response(f"Bad Gateway: {exc}\n", 502))
                finally:
                    done.set()

            def spawn() -> None:
                cluster.scheduler.spawn(in_virtual_time, name=f"http-listener:{what}")

            try:
                taken, _ = outside.offer(spawn, grace=self.grace)
            except OutsideClosed:
                return Response("Service Unavailable: the cluster stopped\n", 503)
            if taken:
                while not done.wait(0.1):
                    if cluster.state != "running" or outside.closed:
                        return Response("Service Unavailable: the cluster stopped\n", 503)
                return box[0]
            return self._serve_here(cluster, request)
        finally:
            outside.drop_source(token)

    def _serve_here(self, cluster: SimCluster, request: Request) -> Response:
        """Run the route's worker on this thread, outside virtual time."""
        try:
            service, name, values = cluster.http._front().match(request)
        except HTTPException as exc:
            return exc.get_response(request.environ)  # type: ignore[return-value]
        replica = cluster.http._pick(service)
        container = replica.container if replica is not None else None
        servers = web_servers([container]) if container is not None else []
        provider = servers[0].provider(name) if servers else None
        if container is None or provider is None:
            return Response(f"Service Unavailable: no replica of {service} is running\n", 503)
        box: list[tuple[Any, ExcInfo | None]] = []

        def keep(
            worker_ctx: WorkerContext, result: Any, exc_info: ExcInfo | None
        ) -> tuple[Any, ExcInfo | None]:
            box.append((result, exc_info))
            return result, exc_info

        try:
            context_data, parent_stack = provider.web_server.context_data_from_headers(request)
            args, kwargs = provider.get_entrypoint_parameters(request, values)
            provider.check_signature(args, kwargs)
            worker_ctx = WorkerContext(
                container, None, provider, args, kwargs, context_data, parent_stack
            )
            container._run_worker(worker_ctx, keep)
            if not box:
                return Response(f"Bad Gateway: {container.replica_name} failed the call\n", 502)
            result, exc_info = box[0]
            if exc_info is not None:
                raise exc_info[1]
            return provider.response_from_result(result)
        except Exception as exc:
            return provider.response_from_exception(exc)

    def __repr__(self) -> str:
        return f"<RealHttpListener on {self.address}>"
