"""An HTTP gateway in front of the order graph of ``orders.py``.

``GET /orders/<id>`` gathers an order's summary (the order service asks
three services at once); ``POST /orders`` places an order from a JSON body.
The gateway reads no data itself: each route makes one RPC call, and the
``nameko.user_id`` header of the request reaches every service as context
data.

    shimeji sim examples/gateway.py
    shimeji sim examples/gateway.py --call 'GET /orders/7'
    shimeji sim examples/gateway.py --call 'POST /orders {"order_id": 8, "items": []}'
"""

import json

from examples.orders import (
    ORDER,
    CustomerService,
    EmailService,
    InventoryService,
    OrderDb,
    OrderService,
    PaymentService,
    ShippingService,
)
from shimeji.exceptions import BadRequest
from shimeji.rpc import RpcProxy
from shimeji.web import http


class GatewayService:
    name = "gateway"

    orders = RpcProxy("order_service")

    @http("GET", "/orders/<int:order_id>")
    def get_order(self, request, order_id):
        summary = self.orders.get_order_summary_async(order_id)
        return 200, {"Content-Type": "application/json"}, json.dumps(summary)

    @http("POST", "/orders", expected_exceptions=BadRequest)
    def place_order(self, request):
        try:
            order = json.loads(request.get_data(as_text=True))
        except ValueError:
            raise BadRequest("the body must be a JSON order") from None
        missing = [key for key in ("order_id", "payment_info", "items", "customer_email")
                   if key not in order]
        if missing:
            raise BadRequest(f"the order lacks {', '.join(missing)}")
        result = self.orders.process_order_parallel(order)
        status = 201 if result["status"] == "success" else 402
        return status, {"Content-Type": "application/json"}, json.dumps(result)


SERVICES = (GatewayService, OrderService, PaymentService, InventoryService, EmailService,
            OrderDb, CustomerService, ShippingService)


def scenario(cluster):
    """An order placed and then read back through the gateway, as user 42."""
    for service in SERVICES:
        cluster.add_service(service)
    headers = {"nameko.user_id": "42"}
    placed = cluster.http.post("/orders", json=ORDER, headers=headers)
    summary = cluster.http.get(f"/orders/{ORDER['order_id']}", headers=headers)
    return {"POST /orders": answer(placed), "GET /orders/1001": answer(summary)}


def answer(response):
    """``(status, JSON body)``, or ``(status, text)`` when the body is not JSON."""
    if response.headers.get("Content-Type") == "application/json":
        return response.status_code, response.json()
    return response.status_code, response.text
