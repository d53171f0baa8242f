"""HTTP entrypoints (nameko's ``nameko.web.handlers``).

    from shimeji.web import http

    class Gateway:
        name = "gateway"
        orders = RpcProxy("orders")

        @http("GET", "/orders/<int:order_id>")
        def get_order(self, request, order_id):
            return json.dumps(self.orders.get(order_id))

The method receives the werkzeug ``Request`` and the url's variables; it
returns a string, ``(status, body)``, ``(status, headers, body)`` or a
werkzeug ``Response``. ``shimeji run`` serves the routes on
``WEB_SERVER_ADDRESS``; on the simulator, ``cluster.http.get(...)`` sends
requests in virtual time.
"""

from shimeji.core.web import HttpRequestHandler, WebServer, http

__all__ = ["HttpRequestHandler", "WebServer", "http"]
