"""The services the HTTP benchmark runs with ``shimeji run`` (the backend is
``benchmarks.amqp_services:Echo``)."""

import json

from shimeji.rpc import RpcProxy
from shimeji.web import http


class HttpGateway:
    name = "bench_http_gateway"

    echo_rpc = RpcProxy("bench_echo")

    @http("GET", "/echo/<int:value>")
    def echo(self, request, value):
        return json.dumps(self.echo_rpc.echo(value))
