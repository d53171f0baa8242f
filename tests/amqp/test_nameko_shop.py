"""docs/migrating-from-nameko.md, step 3: the nameko shop in production, half moved.

The gateway and the orders service run under ``shimeji run --nameko`` (their
code unchanged: it imports nameko), the products service under nameko 2.14.1's
own ``nameko run``, on one broker. A request enters shimeji's gateway over
real HTTP, crosses to nameko's products over RPC, and an order's event reaches
nameko's handler.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .broker import clean_broker
from .processes import ROOT, ServiceProcess, free_port

SERVICES = "examples/nameko_shop/services.py"


def request(port: int, method: str, path: str, body: object = None) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, body=data)
        got = conn.getresponse()
        raw = got.read()
        try:
            return got.status, json.loads(raw)
        except ValueError:
            return got.status, raw.decode()
    finally:
        conn.close()


@pytest.fixture
def shop(broker_uri: str, nameko_python: str, tmp_path: Path) -> Iterator[int]:
    exchange = f"shop-{uuid.uuid4().hex[:10]}"
    port = free_port()
    shimeji_config = tmp_path / "shimeji.yaml"
    shimeji_config.write_text(
        f"AMQP_URI: {broker_uri}\nrpc_exchange: {exchange}\nRPC_TIMEOUT: 10\n"
        f"WEB_SERVER_ADDRESS: 127.0.0.1:{port}\n"
    )
    nameko_config = tmp_path / "nameko.yaml"
    nameko_config.write_text(
        f"AMQP_URI: {broker_uri}\nrpc_exchange: {exchange}\nINITIAL_STOCK:\n  anvil: 3\n"
    )
    nameko_bin = str(Path(nameko_python).with_name("nameko"))
    products = subprocess.Popen(
        [
            nameko_bin,
            "run",
            "--config",
            str(nameko_config),
            "examples.nameko_shop.services:ProductsService",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert products.stderr is not None
        for line in products.stderr:
            lines.append(line)
            if "starting services" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    shimeji = ServiceProcess(
        f"{SERVICES}:GatewayService",
        f"{SERVICES}:OrdersService",
        config=shimeji_config,
        extra=("--nameko",),
    )
    try:
        assert started.wait(60), "".join(lines)
        shimeji.wait_ready()
        deadline = time.monotonic() + 30
        while request(port, "GET", "/products/anvil")[0] != 200:  # nameko consuming
            assert time.monotonic() < deadline, "".join(lines) + "".join(shimeji.lines)
            time.sleep(0.2)
        yield port
    finally:
        shimeji.stop()
        products.terminate()
        try:
            products.wait(20)
        except subprocess.TimeoutExpired:
            products.kill()
        clean_broker(
            broker_uri,
            "rpc-products",
            "rpc-orders",
            "rpc-gateway",
            "evt-orders-order_created--products.reserve",
            exchange=exchange,
        )
        clean_broker(broker_uri, exchange="orders.events")


def test_shimeji_gateway_and_orders_beside_nameko_products(shop: int):
    assert request(shop, "GET", "/products/anvil") == (200, {"id": "anvil", "stock": 3})
    status, order = request(shop, "POST", "/orders", {"id": 1, "product_id": "anvil"})
    assert (status, order) == (201, {"id": 1, "product_id": "anvil", "quantity": 1})
    # the order's event is handled by nameko's products service
    deadline = time.monotonic() + 20
    while request(shop, "GET", "/products/anvil")[1] != {"id": "anvil", "stock": 2}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status, text = request(shop, "POST", "/orders", {"id": 2, "product_id": "anvil", "quantity": 5})
    assert status == 500 and "OutOfStock" in str(text)  # raised in shimeji, as nameko would
    status, text = request(shop, "GET", "/products/nothing")
    assert status == 500 and "KeyError" in str(text)  # raised in nameko, through the gateway
