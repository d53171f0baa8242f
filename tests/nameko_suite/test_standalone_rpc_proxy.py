"""Standalone RPC proxies on the simulator, test by test after nameko's own.

Each test names the nameko test whose behaviour it checks. The proxies are
``shimeji.standalone``'s, given ``rabbit_config`` (a ``sim://`` uri naming the
test's cluster); time is virtual, so sleeping services cost nothing.
"""

from __future__ import annotations

import time

import pytest

from shimeji.exceptions import RemoteError, RpcTimeout
from shimeji.extensions import DependencyProvider
from shimeji.rpc import rpc
from shimeji.sim.faults import FaultPlan, Partition
from shimeji.standalone import ClusterRpcProxy, ServiceRpcProxy
from shimeji.testing.waiting import wait_for_call

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class ContextReader(DependencyProvider):
    """A function reading a value of the worker's context data."""

    def get_dependency(self, worker_ctx):
        return lambda key: worker_ctx.data.get(key)


class ExampleError(Exception):
    pass


class FooService:
    name = "foobar"

    get_context_value = ContextReader()

    @rpc
    def spam(self, ham):
        return ham

    @rpc
    def broken(self):
        raise ExampleError("broken")

    @rpc
    def get_context_data(self, name):
        return self.get_context_value(name)

    @rpc
    def sleep(self, seconds=0):
        time.sleep(seconds)
        return seconds


@pytest.fixture
def foobar(container_factory, rabbit_config):
    container = container_factory(FooService, rabbit_config)
    container.start()
    return container


# follows nameko test/standalone/test_rpc_proxy.py::test_proxy
def test_proxy(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config) as foo:
        assert foo.spam(ham="eggs") == "eggs"
        assert foo.spam(ham="eggs") == "eggs"  # used again


# follows nameko test/standalone/test_rpc_proxy.py::test_proxy_manual_start_stop
def test_proxy_manual_start_stop(foobar, rabbit_config):
    foobar_proxy = ServiceRpcProxy("foobar", rabbit_config)
    foo = foobar_proxy.start()
    assert foo.spam(ham="eggs") == "eggs"
    assert foo.spam(ham="eggs") == "eggs"
    foobar_proxy.stop()


# follows nameko test/standalone/test_rpc_proxy.py::test_proxy_context_data
def test_proxy_context_data(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config, {"language": "en"}) as foo:
        assert foo.get_context_data("language") == "en"
    with ServiceRpcProxy("foobar", rabbit_config, {"language": "fr"}) as foo:
        assert foo.get_context_data("language") == "fr"


# follows nameko test/standalone/test_rpc_proxy.py::test_proxy_remote_error
def test_proxy_remote_error(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config) as proxy:
        with pytest.raises(RemoteError) as exc_info:
            proxy.broken()
        assert exc_info.value.exc_type == "ExampleError"


# follows nameko test/standalone/test_rpc_proxy.py::test_async_rpc
def test_async_rpc(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config) as foo:
        replies = [foo.spam.call_async(ham=n) for n in range(1, 6)]
        assert [replies[i].result() for i in (1, 2, 0, 3, 4)] == [2, 3, 1, 4, 5]


# follows nameko test/standalone/test_rpc_proxy.py::test_multiple_proxies
def test_multiple_proxies(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config) as proxy1:
        res1 = proxy1.spam.call_async(ham=1)
        with ServiceRpcProxy("foobar", rabbit_config) as proxy2:
            res2 = proxy2.spam.call_async(ham=2)
            assert res1.result() == 1
            assert res2.result() == 2


# follows nameko test/standalone/test_rpc_proxy.py::test_multiple_calls_to_result
def test_multiple_calls_to_result(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config) as proxy:
        res = proxy.spam.call_async(ham=1)
        assert res.result() == 1
        assert res.result() == 1


# follows nameko test/standalone/test_rpc_proxy.py::test_timeout_not_needed
def test_timeout_not_needed(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config, timeout=1) as proxy:
        assert proxy.sleep() == 0


# follows nameko test/standalone/test_rpc_proxy.py::test_timeout
def test_timeout(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config, timeout=0.5) as proxy:
        with pytest.raises(RpcTimeout):
            proxy.sleep(seconds=1)
        assert proxy.sleep(seconds=0) == 0  # the proxy still works


# follows nameko test/standalone/test_rpc_proxy.py::test_async_timeout
def test_async_timeout(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config, timeout=0.5) as proxy:
        result = proxy.sleep.call_async(seconds=1)
        with pytest.raises(RpcTimeout):
            result.result()
        result = proxy.sleep.call_async(seconds=0.2)
        time.sleep(0.2)
        assert result.result() == 0.2


# follows nameko test/standalone/test_rpc_proxy.py::test_use_after_close
def test_use_after_close(foobar, rabbit_config):
    with ServiceRpcProxy("foobar", rabbit_config) as proxy:
        proxy.spam(ham=1)
    with pytest.raises(RuntimeError) as exc:
        proxy.spam(ham=1)
    assert str(exc.value) == "This consumer has been stopped, and can no longer be used"
    with pytest.raises(RuntimeError, match="can no longer be used"):
        proxy.spam.call_async(ham=1)


def test_use_after_close_of_a_cluster_proxy(foobar, rabbit_config):
    """The same for a ClusterRpcProxy's proxy, a method looked up before or after."""
    with ClusterRpcProxy(rabbit_config) as proxy:
        spam = proxy.foobar.spam
        assert spam(ham=1) == 1
    for method in (spam, proxy.foobar.spam, proxy["foobar"].spam):
        with pytest.raises(RuntimeError, match="can no longer be used"):
            method(ham=1)


# follows nameko test/standalone/test_rpc_proxy.py::test_cluster_proxy
def test_cluster_proxy(foobar, rabbit_config):
    with ClusterRpcProxy(rabbit_config) as proxy:
        assert proxy.foobar.spam(ham=1) == 1


# follows nameko test/standalone/test_rpc_proxy.py::test_cluster_proxy_reuse
def test_cluster_proxy_reuse(foobar, rabbit_config):
    cluster_proxy = ClusterRpcProxy(rabbit_config)
    with cluster_proxy as proxy:
        assert proxy.foobar.spam(ham=1) == 1
    with cluster_proxy as second_proxy:
        assert second_proxy.foobar.spam(ham=1) == 1


# follows nameko test/standalone/test_rpc_proxy.py::test_cluster_proxy_dict_access
def test_cluster_proxy_dict_access(foobar, rabbit_config):
    with ClusterRpcProxy(rabbit_config) as proxy:
        assert proxy["foobar"].spam(ham=3) == 3


class TestDisconnectWithPendingReply:
    """The proxy loses its connection while a reply is pending."""

    class Service:
        name = "service"

        @rpc
        def method(self, arg):
            time.sleep(1)  # nameko's blocks on an event the test sets
            return arg

    # follows nameko test/standalone/test_rpc_proxy.py::TestDisconnectWithPendingReply::test_disconnect_and_successfully_reconnect
    def test_disconnect_and_successfully_reconnect(
        self, container_factory, rabbit_config, sim_cluster
    ):
        container = container_factory(self.Service, rabbit_config)
        container.start()

        with ClusterRpcProxy(rabbit_config) as proxy:
            # an async call that blocks; wait for its worker to have spawned
            with wait_for_call(container, "spawn_worker"):
                res = proxy.service.method.call_async("msg1")

            # the proxy's connection drops, and comes back 2 s later, after the
            # reply was sent
            now = sim_cluster.clock.elapsed()
            sim_cluster.add_faults(FaultPlan([Partition("client", at=now, duration=2)]))

            # the proxy recovers the reply in flight, once back
            assert res.result() == "msg1"
            assert sim_cluster.clock.elapsed() >= now + 2
            # and works again after reconnecting
            assert proxy.service.method("msg2") == "msg2"
