"""Service code and inputs that misbehave: each gets a precise answer, and the
replicas live on."""

from __future__ import annotations

import time

import pytest

from shimeji.config import redact_uri
from shimeji.exceptions import (
    ConfigurationError,
    ContainerBeingKilled,
    RemoteError,
    UnserializableValueError,
)
from shimeji.rpc import rpc
from shimeji.sim import SimCluster
from shimeji.sim.faults import Crash, Delay, Drop, Partition


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("broken __str__")


class Hostile:
    name = "hostile"

    @rpc
    def unprintable(self):
        raise Unprintable("x")

    @rpc
    def exits(self):
        raise SystemExit(3)

    @rpc
    def ping(self):
        return "pong"


@pytest.mark.parametrize("trace", [True, False])
def test_an_exception_that_cannot_be_printed(trace):
    """An exception whose __str__ fails still comes back as a RemoteError."""
    with SimCluster(trace=trace) as cluster:
        cluster.add_service(Hostile, replicas=2)
        with pytest.raises(RemoteError) as caught:
            cluster.rpc_proxy(timeout=5).hostile.unprintable()
        assert caught.value.exc_type == "Unprintable"
        assert caught.value.value == "[__unicode__ failed]"  # nameko's placeholder
        assert all(r.alive for r in cluster.replicas("hostile"))
        assert cluster.rpc.hostile.ping() == "pong"


def test_sys_exit_in_a_method_is_its_answer():
    """SystemExit raised by a method is the call's error; the replica lives on."""
    with SimCluster(config={"max_workers": 1}) as cluster:
        cluster.add_service(Hostile)
        with pytest.raises(RemoteError, match="SystemExit 3"):
            cluster.rpc.hostile.exits()
        assert cluster.rpc.hostile.ping() == "pong"


class BadInit:
    name = "bad_init"

    def __init__(self):
        raise ValueError("cannot build")

    @rpc
    def run(self):
        return 1


class SlowInit:
    name = "slow_init"

    def __init__(self):
        time.sleep(2)
        self.started = time.time()

    @rpc
    def run(self):
        return self.started


def test_service_init_runs_in_the_worker():
    """The service's __init__ runs in the worker: its error is the call's error,
    and its sleep is virtual."""
    with SimCluster() as cluster:
        cluster.add_service(BadInit)
        cluster.add_service(SlowInit)
        with pytest.raises(RemoteError, match="ValueError cannot build"):
            cluster.rpc.bad_init.run()
        assert cluster.replica("bad_init-1").alive
        wall = time.process_time()
        assert cluster.rpc.slow_init.run() == cluster.now() - 0.001
        assert time.process_time() - wall < 1


def test_deeply_nested_values_are_refused_clearly(sim_cluster):
    """A value nested too deeply for JSON is an UnserializableValueError."""
    sim_cluster.add_service(Hostile)
    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(UnserializableValueError, match="nested too deeply"):
        sim_cluster.rpc.hostile.ping(value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_timeouts_must_be_finite(bad):
    """NaN and infinite timeouts and durations are configuration errors."""
    with pytest.raises(ConfigurationError, match="RPC_TIMEOUT"):
        SimCluster(config={"RPC_TIMEOUT": bad})
    with SimCluster() as cluster:
        with pytest.raises(ConfigurationError, match="timeout must be seconds"):
            cluster.rpc_proxy(timeout=bad)
        with pytest.raises(ConfigurationError, match="advance"):
            cluster.advance(bad)
        with pytest.raises(ConfigurationError, match="broker_outage"):
            cluster.broker_outage(bad)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Delay(seconds="2"), "seconds and jitter must be numbers"),
        (lambda: Drop(probability="0.5"), "probability must be between 0 and 1"),
        (lambda: Drop(service=5), "service must be a non-empty string"),
        (lambda: Crash(replica=3), "replica must name a replica"),
        (lambda: Partition(replica="x", duration=float("inf")), "duration must be seconds"),
        (lambda: Drop(count=True), "count must be a whole number"),
    ],
)
def test_fault_fields_are_typed(build, message):
    """Fault fields of the wrong type are ConfigurationErrors, never TypeErrors."""
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_faults_naming_unknown_replicas_say_so():
    """Partitioning or killing a name the cluster does not have lists the real ones."""
    with SimCluster() as cluster:
        cluster.add_service(Hostile)
        for action in (cluster.partition, cluster.heal, cluster.kill):
            with pytest.raises(ConfigurationError, match=r"'hostile'.*hostile-1"):
                action("hostile")


def test_closing_a_cut_off_client_fails_its_calls():
    """A client closed while cut off from the broker still fails its waiting calls."""
    with SimCluster() as cluster:
        cluster.add_service(Hostile)
        client = cluster.rpc_proxy()
        reply = client.hostile.ping.call_async()
        cluster.partition(client.label)
        cluster._clients[-1].close(delete_queue=True)
        with pytest.raises(ContainerBeingKilled, match="closed while waiting"):
            reply.result()


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("amqp://u:secret@h:5672//", "amqp://u:***@h:5672//"),
        ("amqp://u:a@h1//;amqp://v:TOPSECRET@h2//", "amqp://u:***@h1//;amqp://v:***@h2//"),
        ("amqp://u:p@h:notaport//", "amqp://u:***@h:notaport//"),
        ("amqp://u:p:with:colons@h/vhost", "amqp://u:***@h/vhost"),
        ("amqp://h//", "amqp://h//"),
    ],
)
def test_passwords_never_show(uri, shown):
    """Every password of a URI (failover lists too) is hidden; bad URIs never raise."""
    assert redact_uri(uri) == shown
