"""shimeji.testing.services beyond nameko's own tests: every kind of entrypoint,
replicas of a plain SimCluster as containers, bad input, determinism."""

from __future__ import annotations

import json

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shimeji.contextdata import ContextDataProvider
from shimeji.events import EventDispatcher, event_handler
from shimeji.exceptions import ExtensionNotFound
from shimeji.extensions import DependencyProvider
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.testing.services import (
    dummy,
    entrypoint_hook,
    entrypoint_waiter,
    replace_dependencies,
    restrict_entrypoints,
)
from shimeji.testing.utils import get_container, get_extension
from shimeji.timer import timer
from shimeji.web import http


class CallIds(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return list(worker_ctx.call_id_stack)


class Orders:
    name = "orders"
    dispatch = EventDispatcher()
    context = ContextDataProvider()
    call_ids = CallIds()
    ticks = []

    @rpc
    def place(self, order_id):
        self.dispatch("placed", {"order_id": order_id})
        return {"order_id": order_id, "by": self.context.get("user_id")}

    @http("GET", "/orders/<int:order_id>")
    def show(self, request, order_id):
        return 200, json.dumps({"order_id": order_id, "q": request.args.get("q")})

    @timer(interval=60)
    def sweep(self):
        Orders.ticks.append("sweep")
        return "swept"

    @rpc
    def stack(self):
        return self.call_ids

    @dummy
    def internal(self, value):
        return value * 2


class Mailer:
    name = "mailer"
    sent = []

    @event_handler("orders", "placed")
    def confirm(self, payload):
        Mailer.sent.append(payload["order_id"])
        return payload["order_id"]


@pytest.fixture(autouse=True)
def clear():
    Orders.ticks.clear()
    Mailer.sent.clear()


def test_hook_runs_each_kind_of_entrypoint(sim_cluster):
    """rpc, event handler, timer and http methods run through a hook on a replica
    of a plain SimCluster, and return what the method returned."""
    sim_cluster.add_service(Orders)
    sim_cluster.add_service(Mailer)
    orders = sim_cluster.replica("orders-1")
    mailer = sim_cluster.replica("mailer-1")

    with entrypoint_hook(orders, "place", {"user_id": "u7"}) as place:
        assert place("o1") == {"order_id": "o1", "by": "u7"}
    with entrypoint_waiter(mailer, "confirm") as confirmed:
        pass  # the event dispatched by place() is on its way
    assert confirmed.get() == "o1" and Mailer.sent == ["o1"]

    with entrypoint_hook(mailer, "confirm") as confirm:
        assert confirm({"order_id": "o2"}) == "o2"
    with entrypoint_hook(orders, "sweep") as sweep:
        assert sweep() == "swept"
    assert Orders.ticks == ["sweep"]  # the hook, not the schedule: 60 s have not passed

    request = Request(EnvironBuilder(path="/orders/3", query_string={"q": "x"}).get_environ())
    with entrypoint_hook(orders, "show") as show:
        status, body = show(request, order_id=3)
    assert status == 200 and json.loads(body) == {"order_id": 3, "q": "x"}

    with entrypoint_hook(orders, "internal") as internal:
        assert internal(21) == 42


def test_hook_context_data_carries_the_callers(sim_cluster):
    """A call_id_stack in context_data names the worker's callers."""
    sim_cluster.add_service(Orders)
    with entrypoint_hook(
        sim_cluster.replica("orders-1"), "stack", {"call_id_stack": ["gateway.handle.1"]}
    ) as stack:
        ids = stack()
    assert ids[0] == "gateway.handle.1" and ids[1].startswith("orders.stack.")


def test_hook_on_a_service_container(sim_cluster):
    """A ServiceContainer itself is a container too."""
    (replica,) = sim_cluster.add_service(Orders)
    with entrypoint_hook(replica.container, "internal") as internal:
        assert internal(2) == 4


def test_waiter_waits_for_a_timer_in_virtual_time(sim_cluster):
    """Waiting for a timer's run lets virtual time pass up to its tick."""
    sim_cluster.add_service(Orders)
    with entrypoint_waiter(sim_cluster.replica("orders-1"), "sweep", timeout=120) as result:
        pass
    assert result.get() == "swept" and sim_cluster.elapsed() == pytest.approx(60)


def test_the_same_seed_gives_the_same_trace():
    """Hooks and waiters take their ids from the cluster's seed: two runs agree byte for byte."""

    def run():
        with SimCluster(seed=3) as cluster:
            cluster.add_service(Orders)
            cluster.add_service(Mailer)
            with entrypoint_hook(cluster.replica("orders-1"), "place") as place:
                place("o1")
            with entrypoint_waiter(cluster.replica("mailer-1"), "confirm"):
                pass
            return cluster.trace.to_jsonl(messages=True)

    first, second = run(), run()
    assert first == second and '"worker_start"' in first


def test_what_is_not_a_container_is_refused(sim_cluster):
    """Anything but a container, replica or ServiceContainer is a TypeError saying what to pass."""
    with pytest.raises(TypeError, match="takes a container"), entrypoint_hook(Orders, "place"):
        pass  # pragma: no cover
    with pytest.raises(TypeError, match="takes a container"):
        replace_dependencies("orders", "dispatch")


def test_a_replica_not_started_is_refused(sim_cluster):
    """A replica added without starting has no running container: the hook says to start it."""
    (replica,) = sim_cluster.add_service(Orders, start=False)
    with pytest.raises(RuntimeError, match="start it first"), entrypoint_hook(replica, "place"):
        pass  # pragma: no cover
    replica.prepare()
    mock = replace_dependencies(replica, "dispatch")
    restrict_entrypoints(replica, "place")
    replica.start()
    with entrypoint_hook(replica, "place") as place:
        place("o9")
    mock.assert_called_once_with("placed", {"order_id": "o9"})
    assert [e.method_name for e in replica.container.entrypoints] == ["place"]


def test_hook_on_a_running_replica_cannot_replace(sim_cluster):
    """A started replica cannot have its dependencies replaced."""
    (replica,) = sim_cluster.add_service(Orders)
    with pytest.raises(RuntimeError, match="before the container is started"):
        replace_dependencies(replica, "dispatch")


def test_waiter_callback_error_is_raised(sim_cluster):
    """An error in the waiter's callback is raised from the block."""
    sim_cluster.add_service(Mailer)

    def broken(worker_ctx, result, exc_info):
        raise LookupError("callback")

    with (
        pytest.raises(LookupError, match="callback"),
        entrypoint_waiter(sim_cluster.replica("mailer-1"), "confirm", callback=broken),
    ):
        sim_cluster.dispatch("orders", "placed", {"order_id": "o1"})


def test_waiter_on_a_replica_killed_meanwhile(sim_cluster):
    """A replica killed while the waiter waits ends the wait with an error naming it."""
    sim_cluster.add_service(Mailer)
    replica = sim_cluster.replica("mailer-1")
    with (
        pytest.raises(
            RuntimeError, match="mailer-1 was killed before a worker of confirm finished"
        ),
        entrypoint_waiter(replica, "confirm"),
    ):
        sim_cluster.kill(replica)


def test_get_extension_and_get_container(sim_cluster):
    """get_extension matches on class and attributes; get_container on the class."""
    (replica,) = sim_cluster.add_service(Orders)
    assert get_extension(replica, RpcProxy) is None
    dispatcher = get_extension(replica, DependencyProvider, attr_name="dispatch")
    assert isinstance(dispatcher, EventDispatcher)
    assert get_extension(replica, DependencyProvider, attr_name="nope") is None
    assert get_extension(replica, DependencyProvider, no_such_attribute=1) is None

    class Runner:
        containers = [replica]

    assert get_container(Runner, Orders) is replica
    assert get_container(Runner, Mailer) is None
    with pytest.raises(TypeError, match="takes a container"):
        get_extension(object(), DependencyProvider)


def test_hook_of_an_unknown_method_names_the_entrypoints(sim_cluster):
    """ExtensionNotFound lists what there is."""
    (replica,) = sim_cluster.add_service(Mailer)
    with (
        pytest.raises(ExtensionNotFound, match=r"'confrim'.*\['confirm'\]"),
        entrypoint_hook(replica, "confrim"),
    ):
        pass  # pragma: no cover


def test_replacements_keep_the_providers_order(sim_cluster):
    """Replaced providers stay where they were, so the lifecycle order is unchanged."""
    (replica,) = sim_cluster.add_service(Orders, start=False)
    container = replica.prepare()
    before = [d.attr_name for d in container.dependencies]
    replace_dependencies(replica, "context", call_ids=["x"])
    assert [d.attr_name for d in container.dependencies] == before
    replica.start()
    with entrypoint_hook(replica, "stack") as stack:
        assert stack() == ["x"]


@pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf"), "30", True])
def test_bad_timeouts_are_refused(sim_cluster, timeout):
    """A timeout that is not seconds >= 0 (or None) is refused, before anything waits."""
    (replica,) = sim_cluster.add_service(Mailer)
    with (
        pytest.raises(ValueError, match="timeout is seconds >= 0"),
        entrypoint_waiter(replica, "confirm", timeout=timeout),
    ):
        pass  # pragma: no cover
    with (
        pytest.raises(ValueError, match="timeout is seconds >= 0"),
        entrypoint_hook(replica, "confirm", timeout=timeout),
    ):
        pass  # pragma: no cover


def test_bad_callback_and_context_data_are_refused(sim_cluster):
    """A callback that cannot be called, or context data that is no mapping, is a TypeError."""
    (replica,) = sim_cluster.add_service(Mailer)
    with (
        pytest.raises(TypeError, match="callback is a function"),
        entrypoint_waiter(replica, "confirm", callback="yes"),
    ):
        pass  # pragma: no cover
    with (
        pytest.raises(TypeError, match="context_data is a mapping"),
        entrypoint_hook(replica, "confirm", context_data=[("user_id", "u1")]),
    ):
        pass  # pragma: no cover
