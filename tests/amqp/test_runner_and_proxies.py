"""ServiceRunner and the standalone proxies, used directly on the broker."""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid

import pytest

from shimeji.exceptions import ReplicaCrashed, RpcTimeout
from shimeji.extensions import DependencyProvider
from shimeji.rpc import rpc
from shimeji.runner import ServiceRunner
from shimeji.standalone import ClusterRpcProxy, ServiceRpcProxy
from tests.conformance.services import Calculator, Slow

from .broker import clean_broker


@pytest.fixture
def config(amqp_uri):
    exchange = f"shimeji-runner-{uuid.uuid4().hex[:10]}"
    made = {"AMQP_URI": amqp_uri, "rpc_exchange": exchange}
    yield made
    clean_broker(
        amqp_uri, "rpc-calculator", "rpc-slow", "rpc-fragile", "rpc-rendezvous", exchange=exchange
    )


def test_service_rpc_proxy_and_cluster_rpc_proxy(config):
    """ServiceRpcProxy calls one service; ClusterRpcProxy any, from several threads."""
    with ServiceRunner(config) as runner:
        runner.add_service(Calculator, replicas=2)
        with ServiceRpcProxy("calculator", config) as calculator:
            assert calculator.add(1, 2) == 3
            assert calculator.add.call_async(3, 4).result() == 7
        results = []
        with ClusterRpcProxy(config) as rpc:
            threads = [
                threading.Thread(target=lambda i=i: results.append(rpc.calculator.add(i, i)))
                for i in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        assert sorted(results) == [2 * i for i in range(8)]
    assert runner.state == "stopped"


def test_a_stopped_proxy_raises_namekos_runtime_error(config):
    """Used after its block, a standalone proxy raises nameko's RuntimeError; a
    ClusterRpcProxy started again works (nameko's test_use_after_close and
    test_cluster_proxy_reuse, on the broker)."""
    with ServiceRunner(config) as runner:
        runner.add_service(Calculator)
        with ServiceRpcProxy("calculator", config) as calculator:
            assert calculator.add(1, 2) == 3
        with pytest.raises(RuntimeError) as caught:
            calculator.add(1, 2)
        assert str(caught.value) == "This consumer has been stopped, and can no longer be used"
        cluster_proxy = ClusterRpcProxy(config)
        with cluster_proxy as rpc:
            assert rpc.calculator.add(2, 2) == 4
        with pytest.raises(RuntimeError, match="can no longer be used"):
            rpc.calculator.add.call_async(1, 1)
        with cluster_proxy as rpc:
            assert rpc.calculator.add(3, 3) == 6


def test_proxy_timeout_and_replicas_added_while_running(config):
    """A proxy's timeout applies; replicas added to a running runner start at once."""
    with ServiceRunner(config) as runner:
        runner.add_service(Slow)
        runner.add_service(Slow)
        assert [r.name for r in runner.replicas("slow")] == ["slow-1", "slow-2"]
        assert all(r.alive for r in runner.replicas("slow"))
        with ClusterRpcProxy(config, timeout=0.2) as rpc, pytest.raises(RpcTimeout):
            rpc.slow.sleep(1)


class Fragile:
    name = "fragile"

    class Breaks(DependencyProvider):
        def worker_setup(self, worker_ctx):
            raise OSError("the database is gone")

    breaks = Breaks()

    @rpc
    def touch(self):
        return "never"


def test_wait_raises_a_replica_crash(config):
    """A replica whose provider fails is killed, loudly: wait() raises ReplicaCrashed,
    and its request goes back to the queue."""
    runner = ServiceRunner(config)
    runner.add_service(Fragile)
    runner.start()
    try:
        with ClusterRpcProxy(config, timeout=1) as rpc, pytest.raises(RpcTimeout):
            rpc.fragile.touch()
        with pytest.raises(ReplicaCrashed, match="the database is gone"):
            runner.wait(timeout=10)
    finally:
        runner.kill()


def test_unknown_application_keys_are_refused_at_start(config):
    """A configuration key nobody declared is a ConfigurationError naming it."""
    from shimeji.exceptions import ConfigurationError

    runner = ServiceRunner({**config, "DATABSE_URL": "x"})
    runner.add_service(Calculator)
    with pytest.raises(ConfigurationError, match="DATABSE_URL"):
        runner.start()


_released = threading.Event()


class Rendezvous:
    name = "rendezvous"

    @rpc
    def wait(self):
        return _released.wait(10)

    @rpc
    def release(self):
        _released.set()
        return "released"


def test_a_worker_blocked_in_its_method_leaves_its_replica_serving(config):
    """The thread that reads a request runs its worker and hands the connection on:
    a worker that blocks never stops its replica from reading the next request."""
    _released.clear()
    with ServiceRunner(config) as runner:
        runner.add_service(Rendezvous)
        with ClusterRpcProxy(config, timeout=5) as rpc:
            for _ in range(3):  # each round starts on a thread that led before
                _released.clear()
                waiting = rpc.rendezvous.wait.call_async()
                assert rpc.rendezvous.release() == "released"
                assert waiting.result() is True
            assert [rpc.rendezvous.release() for _ in range(50)] == ["released"] * 50


def test_no_loop_thread_outlives_a_stopped_runner(config):
    with ServiceRunner(config) as runner:
        runner.add_service(Calculator)
        with ClusterRpcProxy(config) as rpc:
            assert [rpc.calculator.add(i, 1) for i in range(100)] == list(range(1, 101))
    for thread in threading.enumerate():
        if "amqp-loop" in thread.name:
            thread.join(5)
    assert [t.name for t in threading.enumerate() if "amqp-loop" in t.name] == []


def _rabbitmqctl(*args: str) -> list[list[str]]:
    """Rows of a ``rabbitmqctl list_...`` command (the broker's own view of itself)."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.skip("rabbitmqctl is not installed here: the broker's own view is out of reach")
    done = subprocess.run(
        [ctl, *args, "--no-table-headers", "-q"], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        pytest.skip(f"rabbitmqctl cannot list this broker: {done.stderr.strip()}")
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def test_queues_bindings_and_prefetch_as_the_broker_sees_them(config):
    """On the broker itself: a durable rpc-<service> queue bound with <service>.*, a
    reply queue that expires, and each replica's prefetch equal to max_workers."""
    with ServiceRunner({**config, "max_workers": 3}) as runner:
        runner.add_service(Calculator, replicas=2)
        with ClusterRpcProxy(config) as rpc:
            assert rpc.calculator.add(1, 2) == 3
            queues = {
                row[0]: row[1:]
                for row in _rabbitmqctl(
                    "list_queues", "name", "durable", "auto_delete", "arguments"
                )
            }
            bindings = _rabbitmqctl(
                "list_bindings", "source_name", "destination_name", "routing_key"
            )
            prefetch = [
                row[1]
                for row in _rabbitmqctl("list_consumers", "queue_name", "prefetch_count")
                if row[0] == "rpc-calculator"
            ]
    assert queues["rpc-calculator"][:2] == ["true", "false"]
    assert [config["rpc_exchange"], "rpc-calculator", "calculator.*"] in bindings
    replies = [
        row
        for row in bindings
        if row[0] == config["rpc_exchange"] and row[1].startswith("rpc.reply-standalone_rpc_proxy-")
    ]
    assert len(replies) == 1
    reply_queue = replies[0][1]
    assert '"x-expires"' in queues[reply_queue][2]
    assert prefetch == ["3", "3"]
