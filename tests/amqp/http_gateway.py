"""The services ``shimeji run`` serves in the HTTP tests on the broker: a
gateway whose routes call a backend over RPC."""

from __future__ import annotations

import json
import logging
import time

from shimeji.contextdata import ContextDataProvider
from shimeji.rpc import RpcProxy, rpc
from shimeji.web import http

log = logging.getLogger("tests.http_gateway")


class Backend:
    name = "http_backend"
    context = ContextDataProvider()

    @rpc
    def greet(self, name):
        return {"greeting": f"hello {name}", "context": dict(self.context)}


class Gateway:
    name = "http_gateway"
    backend = RpcProxy("http_backend")

    @http("GET", "/hello/<name>")
    def hello(self, request, name):
        return json.dumps(self.backend.greet(name))

    @http("POST", "/size")
    def size(self, request):
        return json.dumps({"size": len(request.get_data())})

    @http("GET", "/fail/<text>")
    def fail(self, request, text):
        raise RuntimeError(text)  # answered 500 and logged, the text quoted

    @http("GET", "/sleep/<float:seconds>")
    def sleep(self, request, seconds):
        log.info("sleeping %s s", seconds)
        time.sleep(seconds)
        return json.dumps(self.backend.greet(f"after {seconds}"))
