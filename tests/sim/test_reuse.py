"""What one cluster leaves to the next in the same process: greenlets, and nothing else.

Task greenlets outlive their cluster in a pool of the thread's (creating one
costs more than a call), virtual time's patches may be kept between
clusters (``keep_virtual_time``), and a service class checked once is not
built again for its check while it and the settings stay the same. None of
them carries state: a cluster is collected once the test lets go of it, and a
run gives the same trace whatever ran before it.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from shimeji.core.extensions import class_memo
from shimeji.exceptions import ConfigurationError
from shimeji.extensions import DependencyProvider
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.sim.scheduler import _idle_pool
from shimeji.web import http


class Leaf:
    name = "leaf"

    @rpc
    def echo(self, value):
        return value


class Branch:
    name = "branch"
    leaf = RpcProxy("leaf")

    @rpc
    def fan(self, count):
        replies = [self.leaf.echo.call_async(i) for i in range(count)]
        return [reply.result() for reply in replies]


def busy_run(seed: int) -> tuple[weakref.ref[SimCluster], str]:
    cluster = SimCluster(seed=seed)
    with cluster:
        cluster.add_service(Leaf, replicas=3)
        cluster.add_service(Branch, replicas=2)
        replies = [cluster.rpc.branch.fan.call_async(5) for _ in range(8)]
        assert [reply.result() for reply in replies] == [list(range(5))] * 8
        trace = cluster.trace.to_jsonl(messages=True)
    return weakref.ref(cluster), trace


def test_pooled_greenlets_hold_nothing_of_their_cluster():
    ref, _ = busy_run(0)
    pool = _idle_pool()
    assert pool  # the greenlets wait for the next cluster
    assert all(glet.task is None and glet.scheduler is None for glet in pool)
    gc.collect()
    assert ref() is None  # nothing kept the cluster alive


def test_a_run_after_busy_runs_is_the_run_of_a_fresh_process():
    _, first = busy_run(7)
    for seed in (1, 2, 3):
        busy_run(seed)
    _, again = busy_run(7)
    assert again == first


# -- classes checked once -------------------------------------------------------------


class Counted(DependencyProvider):
    """Counts the containers built with it (each binds it once)."""

    binds = 0

    def bind(self, container, attr_name):
        Counted.binds += 1
        return super().bind(container, attr_name)


def counted_service():
    """A fresh class (so that no earlier test checked it) with a Counted provider."""

    class Checked:
        name = "checked"
        counted = Counted()

        @rpc
        def ping(self):
            return "pong"

    return Checked


def containers_built(service_cls, config=None, replicas=1) -> int:
    Counted.binds = 0
    with SimCluster(config=config) as cluster:
        cluster.add_service(service_cls, replicas=replicas)
        assert cluster.rpc.checked.ping() == "pong"
    return Counted.binds


def test_a_class_is_built_for_its_check_once_under_the_same_settings():
    """The first cluster builds a container to check the class, then its replicas';
    later ones build only their replicas', until the settings differ."""
    service_cls = counted_service()
    assert containers_built(service_cls, replicas=2) == 3
    assert containers_built(service_cls, replicas=2) == 2
    assert containers_built(service_cls, config={"max_workers": 3}) == 2
    assert containers_built(service_cls, config={"max_workers": 3}) == 1


def test_a_class_changed_since_its_check_is_checked_again():
    """Taking away its only entrypoint after a first cluster ran it is refused, as
    for a class never seen."""
    service_cls = counted_service()
    containers_built(service_cls)
    del service_cls.ping
    with SimCluster() as cluster, pytest.raises(ConfigurationError, match="no entrypoints"):
        cluster.add_service(service_cls)


def routed(service: str, path: str) -> type:
    """A fresh service class ``service`` whose one route, ``GET path``, answers its name."""

    class Routed:
        name = service

        @http("GET", path)
        def get(self, request):
            return service

    return Routed


def test_a_route_clash_is_found_whatever_was_checked_before():
    """A class checked alone in one cluster still clashes with another's route."""
    First, Second = routed("first", "/shared"), routed("second", "/shared")
    for service_cls in (First, Second):
        with SimCluster() as cluster:
            cluster.add_service(service_cls)
            assert cluster.http.get("/shared").text == service_cls.name
    with SimCluster() as cluster:
        cluster.add_service(First)
        with pytest.raises(ConfigurationError, match=r"claimed by first\.get and by second\.get"):
            cluster.add_service(Second)


def test_a_run_on_classes_checked_before_has_the_trace_of_a_first_run():
    """Skipping the check's container changes nothing a run records."""
    first = fresh_check_run()
    assert fresh_check_run(reuse=True) == first


def fresh_check_run(reuse: bool = False) -> str:
    if not reuse:
        for service_cls in (Leaf, Branch):
            class_memo(service_cls).clear()
    _, trace = busy_run(5)
    return trace


# -- the HTTP front follows the services ----------------------------------------------


def test_routes_added_after_a_request_are_served():
    """The front, kept from one request to the next, takes in a service added since."""
    Early, Late = routed("early", "/early"), routed("late", "/late")
    with SimCluster() as cluster:
        cluster.add_service(Early)
        assert cluster.http.get("/late").status_code == 404
        cluster.add_service(Late)
        assert cluster.http.get("/late").text == "late"
        assert cluster.http.get("/early").text == "early"


# -- what a class declares, read once while it stays the same -------------------------


def test_a_dependency_replaced_on_the_class_is_the_one_bound_next():
    """A provider swapped on the class after a cluster ran it is the one the next
    cluster's replicas bind."""
    service_cls = counted_service()
    assert containers_built(service_cls) >= 1

    class Fixed(DependencyProvider):
        def get_dependency(self, worker_ctx):
            return "fixed"

    service_cls.counted = Fixed()
    service_cls.which = rpc(lambda self: type(self.counted).__name__ + ":" + self.counted)
    with SimCluster() as cluster:
        cluster.add_service(service_cls)
        assert cluster.rpc.checked.which() == "str:fixed"


def test_an_entrypoint_added_to_a_method_later_is_served():
    """Decorating a method of a class already run makes it an entrypoint at once,
    though the class's namespace did not change."""

    class Late:
        name = "late"

        @rpc
        def first(self):
            return 1

        def second(self):
            return 2

    with SimCluster() as cluster:
        cluster.add_service(Late)
        assert cluster.rpc.late.first() == 1
    rpc(Late.second)
    with SimCluster() as cluster:
        cluster.add_service(Late)
        assert cluster.rpc.late.second() == 2


def test_a_signature_changed_since_a_run_is_read_again():
    """A method's defaults changed after a cluster ran it: calls bind against the
    new ones (the signature kept from the first run would refuse the call)."""

    class Defaults:
        name = "defaults"

        @rpc
        def add(self, a, b):
            return a + b

    with SimCluster() as cluster:
        cluster.add_service(Defaults)
        assert cluster.rpc.defaults.add(1, 2) == 3
    Defaults.add.__defaults__ = (10,)
    with SimCluster() as cluster:
        cluster.add_service(Defaults)
        assert cluster.rpc.defaults.add(1) == 11


# -- what is remembered of a class goes with it ------------------------------------------


def test_a_class_a_cluster_ran_is_freed_once_nothing_else_holds_it():
    """What is remembered of a class (what it declares, its checks, its methods'
    signatures) does not keep it alive: a class made in a test, and what its
    methods close over, are freed once the test lets go of them."""

    def make():
        held = bytearray(1_000_000)  # what the class's method closes over

        class Made(Leaf):
            name = "made"
            leaf = RpcProxy("leaf")

            @rpc
            def size(self):
                return len(held) + len(super().echo("four"))

        return Made

    made = make()
    class_ref, method_ref = weakref.ref(made), weakref.ref(made.size)
    for _ in range(2):  # read once, then from what was remembered
        with SimCluster() as cluster:
            cluster.add_service(made)
            cluster.add_service(Leaf)
            assert cluster.rpc.made.size() == 1_000_004
    del made, cluster
    gc.collect()
    assert class_ref() is None
    assert method_ref() is None
