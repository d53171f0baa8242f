"""nameko 2.14.1's side of the AMQP benchmark; runs in nameko's own virtualenv.

nameko run benchmarks.nameko_bench:Echo benchmarks.nameko_bench:Front --config FILE
nameko run benchmarks.nameko_bench:Sink --config FILE  # the event benchmark's
nameko run benchmarks.nameko_bench:HttpGateway --config FILE  # the HTTP benchmark's
python benchmarks/nameko_bench.py client URI EXCHANGE CALLS WARMUP PIPELINED
python benchmarks/nameko_bench.py events URI EXCHANGE EVENTS
"""

import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from nameko.events import event_handler  # noqa: E402
from nameko.rpc import RpcProxy, rpc  # noqa: E402
from nameko.web.handlers import http  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402


class Echo:
    name = "nbench_echo"

    @rpc
    def echo(self, value):
        return value


class Front:
    name = "nbench_front"

    echo_rpc = RpcProxy("nbench_echo")

    @rpc
    def relay(self, value):
        return self.echo_rpc.echo(value)


class HttpGateway:
    name = "nbench_http_gateway"

    echo_rpc = RpcProxy("nbench_echo")

    @http("GET", "/echo/<int:value>")
    def echo(self, request, value):
        return json.dumps(self.echo_rpc.echo(value))


class Sink:
    name = "nbench_sink"
    handled = 0

    @event_handler("nbench_source", "tick")
    def on_tick(self, payload):
        Sink.handled += 1

    @rpc
    def count(self):
        return Sink.handled


def events_client(uri, exchange, events):
    from nameko.standalone.events import event_dispatcher
    from nameko.standalone.rpc import ClusterRpcProxy

    config = {"AMQP_URI": uri, "rpc_exchange": exchange}
    dispatch = event_dispatcher(config)
    with ClusterRpcProxy(config) as rpc_proxy:
        figures = measure.events(
            lambda i: dispatch("nbench_source", "tick", {"n": i}),
            rpc_proxy.nbench_sink.count,
            int(events),
        )
    print(json.dumps(figures), flush=True)


def client(uri, exchange, calls, warmup, pipelined_calls):
    from nameko.standalone.rpc import ClusterRpcProxy

    calls, warmup, pipelined_calls = int(calls), int(warmup), int(pipelined_calls)
    config = {"AMQP_URI": uri, "rpc_exchange": exchange}
    with ClusterRpcProxy(config) as rpc_proxy:
        echo = rpc_proxy.nbench_echo.echo
        front = rpc_proxy.nbench_front.relay
        figures = measure.sequential(echo, calls, warmup)
        figures["pipelined_per_s"] = measure.pipelined(echo.call_async, pipelined_calls, 200)
        figures["chain_p50_ms"] = measure.sequential(front, calls // 2, warmup)["p50_ms"]
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(*sys.argv[2:])
    elif sys.argv[1] == "events":
        events_client(*sys.argv[2:])
    else:
        sys.exit(
            "usage: nameko_bench.py client URI EXCHANGE CALLS WARMUP PIPELINED\n"
            "       nameko_bench.py events URI EXCHANGE EVENTS"
        )
