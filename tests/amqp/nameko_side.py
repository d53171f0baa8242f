"""The nameko 2.14.1 side of the interoperability tests.

Run with the Python of the nameko virtualenv (``.ci/nameko-venv.sh``), never
imported by shimeji's tests:

    python nameko_side.py serve URI EXCHANGE         # until SIGTERM
    python nameko_side.py call URI EXCHANGE CALLS    # CALLS: JSON, prints JSON
    python nameko_side.py dispatch URI SOURCE EVENT_TYPE DATA  # DATA: JSON
    python nameko_side.py gateway URI EXCHANGE PORT  # nameko @http routes, until SIGTERM

The service (``nameko_greeter``) dispatches events on request (``emit``) and
keeps what its handler of ``shimeji_echo``'s ``shimeji_happened`` events
received (``events_seen``).
"""

import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from nameko.events import EventDispatcher, event_handler  # noqa: E402
from nameko.exceptions import RemoteError  # noqa: E402
from nameko.extensions import DependencyProvider  # noqa: E402
from nameko.rpc import RpcProxy, rpc  # noqa: E402
from nameko.runners import ServiceRunner  # noqa: E402
from nameko.standalone.events import event_dispatcher  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402
from nameko.web.handlers import http  # noqa: E402

EVENTS_SEEN = []


class WorkerContextProvider(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx


class Greeter:
    name = "nameko_greeter"

    worker = WorkerContextProvider()
    shimeji = RpcProxy("shimeji_echo")
    dispatch = EventDispatcher()

    @rpc
    def hello(self, name):
        data = dict(self.worker.data)
        data.pop("call_id_stack", None)
        return {
            "greeting": "hello " + name,
            "context": data,
            "stack": list(self.worker.call_id_stack),
        }

    @rpc
    def fail(self, why):
        raise ValueError(why)

    @rpc
    def via_shimeji(self, value):
        return self.shimeji.whoami_with(value)

    @rpc
    def shimeji_error(self):
        try:
            self.shimeji.fail("from nameko")
        except RemoteError as exc:
            return {"exc_type": exc.exc_type, "value": exc.value}
        return None

    @rpc
    def emit(self, event_type, payload):
        self.dispatch(event_type, payload)
        return list(self.worker.call_id_stack)

    @event_handler("shimeji_echo", "shimeji_happened")
    def on_shimeji(self, payload):
        data = dict(self.worker.data)
        data.pop("call_id_stack", None)
        EVENTS_SEEN.append(
            {"payload": payload, "context": data, "stack": list(self.worker.call_id_stack)}
        )

    @rpc
    def events_seen(self):
        return EVENTS_SEEN


class Gateway:
    """nameko's @http routes in front of the shimeji service ``shimeji_echo``."""

    name = "nameko_gateway"

    worker = WorkerContextProvider()
    shimeji = RpcProxy("shimeji_echo")

    @http("GET", "/whoami/<value>")
    def whoami(self, request, value):
        data = dict(self.worker.data)
        data.pop("call_id_stack", None)
        return json.dumps({"gateway_context": data, "backend": self.shimeji.whoami_with(value)})

    @http("POST", "/echo")
    def echo(self, request):
        return json.dumps(self.shimeji.echo(json.loads(request.get_data(as_text=True))))

    @http("GET", "/fail")
    def fail(self, request):
        return self.shimeji.fail("through the gateway")


def serve_gateway(uri, exchange, port):
    config = {
        "AMQP_URI": uri,
        "rpc_exchange": exchange,
        "WEB_SERVER_ADDRESS": "127.0.0.1:" + port,
    }
    runner = ServiceRunner(config)
    runner.add_service(Gateway)
    runner.start()

    def stop(signum, frame):
        eventlet.spawn(runner.stop)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    runner.wait()


def serve(uri, exchange):
    runner = ServiceRunner({"AMQP_URI": uri, "rpc_exchange": exchange})
    runner.add_service(Greeter)
    runner.start()

    def stop(signum, frame):
        eventlet.spawn(runner.stop)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    runner.wait()


def call(uri, exchange, calls):
    outcomes = []
    config = {"AMQP_URI": uri, "rpc_exchange": exchange}
    for spec in json.loads(calls):
        proxy_config = {**config, **spec.get("config", {})}
        with ClusterRpcProxy(proxy_config, context_data=spec.get("context")) as proxy:
            method = getattr(getattr(proxy, spec["service"]), spec["method"])
            try:
                outcomes.append({"result": method(*spec.get("args", []), **spec.get("kwargs", {}))})
            except RemoteError as exc:
                outcomes.append(
                    {"error": "RemoteError", "exc_type": exc.exc_type, "value": exc.value}
                )
            except Exception as exc:
                outcomes.append({"error": type(exc).__name__, "value": str(exc)})
    print(json.dumps(outcomes), flush=True)


def dispatch(uri, source, event_type, data):
    event_dispatcher({"AMQP_URI": uri})(source, event_type, json.loads(data))
    print("dispatched", flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "serve":
        serve(*args)
    elif mode == "call":
        call(*args)
    elif mode == "dispatch":
        dispatch(*args)
    elif mode == "gateway":
        serve_gateway(*args)
    else:
        sys.exit(f"unknown mode {mode!r}: use serve, call, dispatch or gateway")
