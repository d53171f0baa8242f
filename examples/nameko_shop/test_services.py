"""The shop's tests, as written for nameko 2.x: its fixtures, its testing tools.

With nameko: ``pytest`` against a RabbitMQ broker. With shimeji, unchanged,
on the simulator: ``pytest -p shimeji.compat.pytest_nameko``.
"""

import json

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook, entrypoint_waiter, worker_factory
from nameko.testing.utils import get_container

from examples.nameko_shop.services import (
    DATABASE,
    GatewayService,
    OrdersService,
    OutOfStock,
    ProductsService,
)


@pytest.fixture(autouse=True)
def empty_database():
    DATABASE.clear()
    yield
    DATABASE.clear()


def test_create_order_unit():
    service = worker_factory(OrdersService)
    service.products.get.return_value = {"id": "anvil", "stock": 5}
    assert service.create(1, "anvil", 2) == {"id": 1, "product_id": "anvil", "quantity": 2}
    service.dispatch.assert_called_once_with(
        "order_created", {"id": 1, "product_id": "anvil", "quantity": 2}
    )


def test_out_of_stock_unit():
    service = worker_factory(OrdersService)
    service.products.get.return_value = {"id": "anvil", "stock": 1}
    with pytest.raises(OutOfStock):
        service.create(1, "anvil", 2)


def test_products_reads_its_config(container_factory, rabbit_config):
    config = dict(rabbit_config, INITIAL_STOCK={"rocket": 7})
    container = container_factory(ProductsService, config)
    container.start()
    with entrypoint_hook(container, "get") as get:
        assert get("rocket") == {"id": "rocket", "stock": 7}


def test_order_reserves_stock(runner_factory, rabbit_config):
    runner = runner_factory(rabbit_config, OrdersService, ProductsService)
    runner.start()
    products = get_container(runner, ProductsService)
    with (
        entrypoint_waiter(products, "reserve"),
        ServiceRpcProxy("orders", rabbit_config) as orders,
    ):
        orders.create(1, "anvil", 2)
    with ServiceRpcProxy("products", rabbit_config) as products_rpc:
        assert products_rpc.get("anvil") == {"id": "anvil", "stock": 1}
        with pytest.raises(RemoteError) as error:
            products_rpc.get("nothing")
        assert error.value.exc_type == "KeyError"


def test_gateway(runner_factory, web_config, web_session):
    runner = runner_factory(web_config, GatewayService, OrdersService, ProductsService)
    runner.start()
    assert web_session.get("/products/anvil").json() == {"id": "anvil", "stock": 3}
    answer = web_session.post("/orders", data=json.dumps({"id": 9, "product_id": "anvil"}))
    assert answer.status_code == 201
    assert web_session.post("/orders", data="nonsense").status_code == 400
