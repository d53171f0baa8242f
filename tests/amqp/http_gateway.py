"""The services ``shimeji run`` serves in the HTTP tests on the broker: a
gateway whose routes call a backend over RPC."""

from __future__ import annotations

import json
import logging
import threading
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

    busy = 0  # requests in /busy now, and the most there were at once
    busiest = 0
    lock = threading.Lock()

    @http("GET", "/hello/<name>")
    def hello(self, request, name):
        return json.dumps(self.backend.greet(name))

    @http("POST", "/size")
    def size(self, request):
        return json.dumps({"size": len(request.get_data())})

    @http("GET", "/fail/<text>")
    def fail(self, request, text):
        raise RuntimeError(text)  # answered 500 and logged, the text quoted

    @http("GET", "/busy/<float:seconds>")
    def take_time(self, request, seconds):
        with Gateway.lock:
            Gateway.busy += 1
            Gateway.busiest = max(Gateway.busiest, Gateway.busy)
        time.sleep(seconds)
        with Gateway.lock:
            Gateway.busy -= 1
        return "done"

    @http("GET", "/busiest")
    def most_at_once(self, request):
        return str(Gateway.busiest)

    @http("GET", "/sleep/<float:seconds>")
    def sleep(self, request, seconds):
        log.info("sleeping %s s", seconds)
        time.sleep(seconds)
        return json.dumps(self.backend.greet(f"after {seconds}"))
