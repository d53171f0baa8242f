"""shimeji.standalone's clients with the nameko fixtures' rabbit_config, on the simulator."""

from __future__ import annotations

import time

import pytest

from shimeji.contextdata import ContextDataProvider
from shimeji.events import event_handler
from shimeji.exceptions import ConfigurationError, RpcTimeout
from shimeji.rpc import rpc
from shimeji.standalone import ClusterRpcProxy, ServiceRpcProxy, event_dispatcher
from shimeji.testing.services import entrypoint_waiter

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


def test_a_plain_dict_with_its_uri_works_as_nameko_tests_build_them(
    container_factory, rabbit_config
):
    """nameko's tests build configs of their own from rabbit_config['AMQP_URI']."""
    container_factory(Greeter).start()
    assert rabbit_config["AMQP_URI"].startswith("sim://test-")
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    with ClusterRpcProxy(config) as rpc_proxy:
        assert rpc_proxy.greeter.hello("di") == "hello di from None"


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


def test_containers_take_any_key_as_nameko_does(container_factory, rabbit_config):
    """A service's own settings ride in the config, undeclared, as in nameko."""
    config = dict(rabbit_config, FOO_FEATURE_ENABLED=True, username="guest")
    container = container_factory(Greeter, config)
    container.start()
    assert container.config["FOO_FEATURE_ENABLED"] is True


_KEPT: list[str] = []


def test_the_uri_names_nothing_once_the_test_is_over_1(rabbit_config):
    _KEPT.append(rabbit_config["AMQP_URI"])


def test_the_uri_names_nothing_once_the_test_is_over_2():
    """A uri kept from an earlier test is refused, saying so."""
    (uri,) = _KEPT
    with pytest.raises(ConfigurationError, match="names no running simulated cluster"):
        ServiceRpcProxy("greeter", {"AMQP_URI": uri}).start()
