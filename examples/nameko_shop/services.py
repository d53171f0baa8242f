"""The shop: a gateway, orders and products, written against nameko 2.x.

Nothing here imports shimeji: under ``shimeji.compat.nameko`` (``pytest -p
shimeji.compat.pytest_nameko``, ``shimeji sim --nameko``, ``shimeji run
--nameko``) these imports give shimeji's equivalents.
"""

import json

from nameko.events import EventDispatcher, event_handler
from nameko.exceptions import BadRequest
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy, rpc
from nameko.web.handlers import http


class OutOfStock(Exception):
    pass


#: Stands in for the shop's database: it outlives containers (tests empty it).
DATABASE = {}


class Storage(DependencyProvider):
    """The products' table in ``DATABASE``, its stock filled from the
    ``INITIAL_STOCK`` key of the configuration the first time (a custom
    dependency provider, on nameko's extension API)."""

    def setup(self):
        initial = self.container.config.get("INITIAL_STOCK", {"anvil": 3})
        table = DATABASE.setdefault(self.container.service_name, {})
        table.setdefault("stock", dict(initial))
        table.setdefault("reserved", {})
        self.table = table

    def get_dependency(self, worker_ctx):
        return self.table


class ProductsService:
    name = "products"

    storage = Storage()

    @rpc
    def get(self, product_id):
        if product_id not in self.storage["stock"]:
            raise KeyError(product_id)
        return {"id": product_id, "stock": self.storage["stock"][product_id]}

    @event_handler("orders", "order_created")
    def reserve(self, order):
        # idempotent: an event delivered twice reserves once
        if order["id"] in self.storage["reserved"]:
            return
        self.storage["reserved"][order["id"]] = order["quantity"]
        self.storage["stock"][order["product_id"]] -= order["quantity"]


class OrdersService:
    name = "orders"

    products = RpcProxy("products")
    dispatch = EventDispatcher()

    @rpc(expected_exceptions=OutOfStock)
    def create(self, order_id, product_id, quantity):
        product = self.products.get(product_id)
        if product["stock"] < quantity:
            raise OutOfStock(product_id)
        order = {"id": order_id, "product_id": product_id, "quantity": quantity}
        self.dispatch("order_created", order)
        return order


class GatewayService:
    name = "gateway"

    orders = RpcProxy("orders")
    products = RpcProxy("products")

    @http("GET", "/products/<string:product_id>")
    def get_product(self, request, product_id):
        return json.dumps(self.products.get(product_id))

    @http("POST", "/orders", expected_exceptions=BadRequest)
    def create_order(self, request):
        try:
            body = json.loads(request.get_data(as_text=True))
            order_id, product_id = body["id"], body["product_id"]
            quantity = int(body.get("quantity", 1))
        except (ValueError, KeyError, TypeError):
            raise BadRequest(
                'send {"id": ..., "product_id": ..., "quantity": n}'
            ) from None
        return 201, json.dumps(self.orders.create(order_id, product_id, quantity))
