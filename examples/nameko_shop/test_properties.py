"""A property of the shop's failure path, written once its tests ran on shimeji.

Orders are placed while replicas crash mid-call, requests and events are
duplicated or delayed; whatever happens, no order is reserved twice, every
order the client saw confirmed is reserved (once products runs again, if
the faults took all its replicas down: its events wait in its queue), and
the stock adds up. Run with
``pytest -p shimeji.compat.pytest_nameko`` (the services import nameko).
"""

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from examples.nameko_shop.services import DATABASE, OrdersService, ProductsService
from shimeji.exceptions import RemoteError, RpcTimeout
from shimeji.sim import SimCluster
from shimeji.sim.strategies import fault_plans, schedules, seeds

STOCK = 100


@settings(max_examples=60, deadline=None)  # virtual time: wall-clock deadlines say nothing
@given(
    seed=seeds(),
    plan=fault_plans(
        {"orders": 2, "products": 2},
        kinds=("crash", "crash_during", "duplicate", "delay"),
        methods={"orders": ["create"], "products": ["get", "reserve"]},
        events={"orders": ["order_created"]},
        horizon=2.0,
    ),
    schedule=schedules(),
    quantities=st.lists(st.integers(1, 3), min_size=1, max_size=5),
)
def test_no_order_is_reserved_twice_and_the_stock_adds_up(seed, plan, schedule, quantities):
    DATABASE.clear()
    confirmed = []
    config = {"INITIAL_STOCK": {"anvil": STOCK}, "RPC_TIMEOUT": 5}
    with SimCluster(
        seed=seed, faults=plan, schedule=schedule, config=config,
        extra_config_keys=["INITIAL_STOCK"],
    ) as cluster:
        cluster.add_service(OrdersService, replicas=2)
        cluster.add_service(ProductsService, replicas=2)
        for order_id, quantity in enumerate(quantities):
            # not confirmed (an error): it may or may not have been placed
            with contextlib.suppress(RemoteError, RpcTimeout):
                confirmed.append(cluster.rpc.orders.create(order_id, "anvil", quantity)["id"])
        cluster.advance(60)  # let delayed and redelivered events arrive
        # A plan may crash every products replica for good: confirmed orders'
        # events then wait in its queue. Started again, as an operator would,
        # products reserves them (each crash of the plan fires once).
        for _ in range(10):
            down = [r for r in cluster.replicas("products") if not r.alive and not r.waiting]
            if not down:
                break
            for replica in down:
                cluster.restart(replica)
            cluster.advance(60)
    reserved = DATABASE["products"]["reserved"]
    assert set(confirmed) <= set(reserved)
    assert DATABASE["products"]["stock"]["anvil"] == STOCK - sum(reserved.values())
