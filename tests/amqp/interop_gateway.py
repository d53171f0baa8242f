"""A shimeji gateway in front of the nameko 2.14.1 service ``nameko_greeter``
(tests/amqp/nameko_side.py), served over HTTP by ``shimeji run``."""

from __future__ import annotations

import json

from shimeji.contextdata import ContextDataProvider
from shimeji.exceptions import RemoteError
from shimeji.rpc import RpcProxy
from shimeji.web import http


class ShimejiGateway:
    name = "shimeji_gateway"
    nameko = RpcProxy("nameko_greeter")
    context = ContextDataProvider()

    @http("GET", "/hello/<name>")
    def hello(self, request, name):
        return json.dumps(
            {"gateway_context": dict(self.context), "backend": self.nameko.hello(name)}
        )

    @http("GET", "/fail/<why>")
    def fail(self, request, why):
        try:
            self.nameko.fail(why)
        except RemoteError as exc:
            return 409, json.dumps({"exc_type": exc.exc_type, "value": exc.value})
        return 200, "no error"

    @http("GET", "/crash")
    def crash(self, request):
        return self.nameko.fail("unhandled")  # a RemoteError the route lets through: 500
