"""shimeji.testing.standalone: nameko's standalone clients, with rabbit_config, on the simulator."""

from __future__ import annotations

import time

import pytest

from shimeji.contextdata import ContextDataProvider
from shimeji.events import event_handler
from shimeji.exceptions import RpcTimeout
from shimeji.rpc import rpc
from shimeji.testing.services import entrypoint_waiter
from shimeji.testing.standalone import (
    ClusterRpcProxy,
    ServiceRpcProxy,
    SimConfig,
    event_dispatcher,
)

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class Greeter:
    name = "greeter"
    context = ContextDataProvider()

    @rpc
    def hello(self, who):
        return f"hello {who} from {self.context.get('user_id')}"

    @rpc
    def slow(self):
        time.sleep(10)

    @event_handler("src", "greet")
    def on_greet(self, payload):
        return payload["who"]


def test_service_and_cluster_proxies(container_factory, rabbit_config):
    """ServiceRpcProxy and ClusterRpcProxy call the cluster's services, with context data."""
    container_factory(Greeter, rabbit_config).start()
    with ServiceRpcProxy("greeter", rabbit_config, context_data={"user_id": "u1"}) as greeter:
        assert greeter.hello("ann") == "hello ann from u1"
    with ClusterRpcProxy(rabbit_config) as rpc_proxy:
        assert rpc_proxy.greeter.hello("bob") == "hello bob from None"
        assert rpc_proxy.greeter.hello.call_async("cy").result() == "hello cy from None"


def test_timeout_is_virtual(container_factory, rabbit_config, sim_cluster):
    """A proxy's timeout runs in virtual seconds."""
    container_factory(Greeter).start()
    with (
        ServiceRpcProxy("greeter", rabbit_config, timeout=2) as greeter,
        pytest.raises(RpcTimeout),
    ):
        greeter.slow()
    assert sim_cluster.elapsed() == pytest.approx(2)


def test_event_dispatcher(container_factory, rabbit_config):
    """event_dispatcher(config) dispatches as the source service would."""
    container = container_factory(Greeter)
    container.start()
    dispatch = event_dispatcher(rabbit_config)
    with entrypoint_waiter(container, "on_greet") as result:
        dispatch("src", "greet", {"who": "dee"})
    assert result.get() == "dee"


def test_copies_keep_the_cluster(rabbit_config, web_config, sim_cluster):
    """rabbit_config.copy() (nameko tests' habit) and web_config name the cluster too."""
    config = rabbit_config.copy()
    config["FOO"] = "bar"
    assert isinstance(config, SimConfig) and config.cluster is sim_cluster
    assert "FOO" not in rabbit_config
    assert web_config.cluster is sim_cluster
    assert repr(rabbit_config).startswith("SimConfig({'AMQP_URI'")


def test_plain_mappings_are_refused(rabbit_config):
    """A mapping that names no cluster is refused, saying what to pass and what to use instead."""
    for config in ({}, dict(rabbit_config), None):
        with (
            pytest.raises(TypeError, match=r"rabbit_config fixture.*shimeji\.standalone"),
            ServiceRpcProxy("greeter", config),
        ):
            pass  # pragma: no cover
        with pytest.raises(TypeError, match="rabbit_config fixture"):
            event_dispatcher(config)
