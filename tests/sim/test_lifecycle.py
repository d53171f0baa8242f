"""The worker lifecycle, extension hooks, and what a failing hook does."""

from __future__ import annotations

import logging
import time

import pytest

from shimeji.exceptions import ConfigurationError, RemoteError, ReplicaCrashed, RpcTimeout
from shimeji.extensions import DependencyProvider, SharedExtension
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster


class Recorder(DependencyProvider):
    """Records every hook it sees, in order, into a list shared by the test."""

    log: list = []

    def setup(self):
        self.log.append(("setup", self.container.replica_name))

    def start(self):
        self.log.append(("start", self.container.replica_name))

    def stop(self):
        self.log.append(("stop", self.container.replica_name))

    def kill(self):
        self.log.append(("kill", self.container.replica_name))

    def get_dependency(self, worker_ctx):
        self.log.append(("get_dependency", worker_ctx.method_name))
        return self

    def worker_setup(self, worker_ctx):
        self.log.append(("worker_setup", worker_ctx.method_name))

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        self.log.append(("worker_result", result, exc_info and exc_info[0].__name__))

    def worker_teardown(self, worker_ctx):
        self.log.append(("worker_teardown", worker_ctx.method_name))


class Recorded:
    name = "recorded"
    recorder = Recorder()

    @rpc
    def work(self, value):
        self.recorder.log.append(("method", value))
        return value * 2

    @rpc
    def fail(self):
        self.recorder.log.append(("method", "fail"))
        raise ValueError("nope")


@pytest.fixture(autouse=True)
def _fresh_log():
    Recorder.log = []
    yield


def test_lifecycle_order():
    """Hooks run in nameko's order around the method; reply before worker_result."""
    with SimCluster() as cluster:
        cluster.add_service(Recorded)
        assert cluster.rpc.recorded.work(21) == 42
        with pytest.raises(RemoteError):
            cluster.rpc.recorded.fail()
    log = Recorder.log
    assert log[:2] == [("setup", "recorded-1"), ("start", "recorded-1")]
    assert log[2:8] == [
        ("get_dependency", "work"),
        ("worker_setup", "work"),
        ("method", 21),
        ("worker_result", 42, None),
        ("worker_teardown", "work"),
        ("get_dependency", "fail"),
    ]
    assert log[8:12] == [
        ("worker_setup", "fail"),
        ("method", "fail"),
        ("worker_result", None, "ValueError"),
        ("worker_teardown", "fail"),
    ]
    assert log[-1] == ("stop", "recorded-1")


def test_worker_ctx_exposes_the_call():
    """worker_ctx carries service, method, args, kwargs, context and call ids."""
    seen = {}

    class Spy(DependencyProvider):
        def worker_setup(self, worker_ctx):
            seen.update(
                service_name=worker_ctx.service_name,
                method_name=worker_ctx.method_name,
                args=worker_ctx.args,
                kwargs=worker_ctx.kwargs,
                context_data=dict(worker_ctx.context_data),
                data=dict(worker_ctx.data),
                call_id=worker_ctx.call_id,
                stack=worker_ctx.call_id_stack,
                origin=worker_ctx.origin_call_id,
                parent=worker_ctx.immediate_parent_call_id,
            )

    class Spied:
        name = "spied"
        spy = Spy()

        @rpc
        def go(self, a, b=None):
            return a

    with SimCluster() as cluster:
        cluster.add_service(Spied)
        cluster.rpc_proxy(context_data={"k": "v"}).spied.go(1, b=2)
    assert seen["service_name"] == "spied" and seen["method_name"] == "go"
    assert seen["args"] == (1,) and seen["kwargs"] == {"b": 2}
    # nameko's meanings: data is the context, context_data adds the call id stack
    assert seen["data"] == {"k": "v"}
    assert seen["context_data"] == {"k": "v", "call_id_stack": seen["stack"]}
    assert seen["call_id"].startswith("spied.go.")
    assert seen["stack"][-1] == seen["call_id"]
    assert seen["origin"] == seen["stack"][0] == seen["parent"]


class Boom(DependencyProvider):
    stage = "worker_setup"

    def worker_setup(self, worker_ctx):
        if self.stage == "worker_setup" and worker_ctx.args == ("bad",):
            raise RuntimeError("setup exploded")

    def worker_teardown(self, worker_ctx):
        if self.stage == "worker_teardown" and worker_ctx.args == ("bad",):
            raise RuntimeError("teardown exploded")


def _fragile(stage):
    class Fragile:
        name = "fragile"
        boom = Boom()

        @rpc
        def run(self, value):
            return value

    Boom.stage = stage
    return Fragile


@pytest.mark.parametrize("stage", ["worker_setup", "worker_teardown"])
def test_hook_error_kills_the_replica_loudly(stage, caplog):
    """A failing hook kills its replica: logged at ERROR, traced, raised by stop()."""
    caplog.set_level(logging.ERROR, logger="shimeji")
    cluster = SimCluster()
    cluster.start()
    cluster.add_service(_fragile(stage), replicas=2)
    client = cluster.rpc_proxy(timeout=5)
    # the bad call kills one replica; its request is redelivered to the other,
    # which dies too: the call cannot complete
    if stage == "worker_setup":
        with pytest.raises(RpcTimeout):
            client.fragile.run("bad")
    else:
        client.fragile.run("bad")  # the reply was sent before teardown failed
    assert not cluster.replica("fragile-1").alive
    killed = cluster.trace.filter("replica_killed")
    assert killed and "exploded" in killed[0].detail
    errors = [r for r in caplog.records if "killing the replica" in r.getMessage()]
    assert errors and errors[0].exc_info[0] is RuntimeError
    with pytest.raises(ReplicaCrashed, match="fragile-1 crashed: RuntimeError"):
        cluster.stop()


def test_requests_of_a_killed_replica_are_redelivered():
    """A worker_setup failure on one replica: its request goes to a healthy one."""

    class OnlyFirstFails(DependencyProvider):
        def worker_setup(self, worker_ctx):
            if self.container.replica_name == "picky-1":
                raise RuntimeError("replica 1 is broken")

    class Picky:
        name = "picky"
        dep = OnlyFirstFails()

        @rpc
        def run(self):
            return "served"

    cluster = SimCluster()
    cluster.start()
    cluster.add_service(Picky, replicas=2)
    assert cluster.rpc.picky.run() == "served"
    delivers = [e for e in cluster.trace.filter("deliver", method="run") if not e.is_reply]
    assert [(e.replica, e.detail) for e in delivers] == [
        ("picky-1", ""),
        ("picky-2", "redelivered"),
    ]
    assert cluster.crashes
    cluster.crashes.clear()
    cluster.stop()


def test_shared_extension_is_shared_within_a_replica_only():
    """A SharedExtension is one instance per replica, shared by its providers."""

    class Pool(SharedExtension):
        pass

    class UsesPool(DependencyProvider):
        pool = Pool()

        def get_dependency(self, worker_ctx):
            return self.pool

    class Pooled:
        name = "pooled"
        a = UsesPool()
        b = UsesPool()

        @rpc
        def same(self):
            return self.a is self.b

    with SimCluster() as cluster:
        replicas = cluster.add_service(Pooled, replicas=2)
        assert cluster.rpc.pooled.same() is True
        pools = [list(r.container.shared_extensions.values()) for r in replicas]
        assert pools[0] != pools[1]


def test_bad_service_classes_are_refused_with_a_fix():
    """Broken service classes fail at add_service with a message saying what to do."""

    class NoName:
        @rpc
        def x(self):
            pass

    class NoEntrypoints:
        name = "empty"

    class BadName:
        name = "has space"

        @rpc
        def x(self):
            pass

    class NeedsArgs:
        name = "needs_args"

        def __init__(self, db):
            self.db = db

        @rpc
        def x(self):
            pass

    with SimCluster() as cluster:
        with pytest.raises(ConfigurationError, match="no `name` attribute"):
            cluster.add_service(NoName)
        with pytest.raises(ConfigurationError, match="decorate at least one method with @rpc"):
            cluster.add_service(NoEntrypoints)
        with pytest.raises(ConfigurationError, match="may hold only letters"):
            cluster.add_service(BadName)
        with pytest.raises(ConfigurationError, match="constructible with no arguments"):
            cluster.add_service(NeedsArgs)
        with pytest.raises(ConfigurationError, match="replicas must be"):
            cluster.add_service(Recorded, replicas=0)
        with pytest.raises(ConfigurationError, match="pass the class itself"):
            cluster.add_service("calculator")


def test_two_classes_cannot_share_a_name(sim_cluster):
    """A second class claiming a service's name is refused."""

    class A:
        name = "same"

        @rpc
        def x(self):
            pass

    class B:
        name = "same"

        @rpc
        def x(self):
            pass

    sim_cluster.add_service(A)
    with pytest.raises(ConfigurationError, match="already serves 'same'"):
        sim_cluster.add_service(B)


def test_bad_decorator_arguments():
    """@rpc options are checked when the class is defined."""
    with pytest.raises(ConfigurationError, match="expected_exceptions"):
        rpc(expected_exceptions=("ValueError",))
    with pytest.raises(ConfigurationError, match="sensitive_arguments"):
        rpc(sensitive_arguments=(1,))

    class Sensitive:
        name = "sensitive"

        @rpc(sensitive_arguments=("passwrd",))
        def login(self, user, password):
            pass

    with SimCluster() as cluster, pytest.raises(ConfigurationError, match="'passwrd'"):
        cluster.add_service(Sensitive)


def test_a_stopping_replica_consumes_no_more_requests():
    """Once its entrypoints stop, a replica cancels its consumer (as nameko's
    does): new requests go to the other replica, not back and forth between the
    queue and a replica that can only give them back."""

    class Echo:
        name = "echo"

        @rpc
        def echo(self, value):
            return value

    with SimCluster() as cluster:
        _, two = cluster.add_service(Echo, replicas=2)
        two.container.begin_stop()
        assert [cluster.rpc.echo.echo(n) for n in range(4)] == [0, 1, 2, 3]
        delivered = {e.replica for e in cluster.trace.filter("deliver") if not e.is_reply}
        assert delivered == {"echo-1"}
        assert not cluster.trace.filter("requeue")
        two.container.end_stop()


class Selfish:
    """A worker that, while its replica stops, calls its own service."""

    name = "selfish"
    me = RpcProxy("selfish", timeout=1.0)

    @rpc
    def outer(self):
        time.sleep(0.5)  # the cluster begins to stop meanwhile
        try:
            return self.me.inner()
        except RpcTimeout:
            return "no replica took it"

    @rpc
    def inner(self):
        return "inner"


def test_a_request_sent_while_its_replica_stops_waits_in_the_queue():
    """A stopping replica takes no new request: one sent to it while it waits for
    its workers stays in the queue (here until its caller's timeout), instead of
    being refused, requeued and delivered straight back to it for ever."""
    with SimCluster() as cluster:
        cluster.add_service(Selfish)
        cluster.rpc.selfish.outer.call_async()
        cluster.advance(0.1)  # outer runs; the cluster stops on leaving the block
    # The stop waited for outer, whose call to inner timed out undelivered.
    assert len(cluster.trace.filter("timeout", method="inner")) == 1
    assert [e.method for e in cluster.trace.filter("worker_end")] == ["outer"]
    assert not cluster.trace.filter("requeue", replica="selfish-1")  # never refused
