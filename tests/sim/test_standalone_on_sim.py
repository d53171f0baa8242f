"""Standalone proxies and dispatchers pointed at a simulated cluster (sim://)."""

from __future__ import annotations

import pytest

from shimeji.amqp_adapter import AmqpTransport
from shimeji.core.config import Settings
from shimeji.events import event_handler
from shimeji.exceptions import ConfigurationError, RemoteError
from shimeji.rpc import rpc
from shimeji.sim import SimCluster
from shimeji.standalone import ClusterRpcProxy, ServiceRpcProxy, event_dispatcher


class Echo:
    name = "echo"
    seen: list = []

    @rpc
    def echo(self, value):
        return value

    @rpc
    def fail(self):
        raise ValueError("no")

    @event_handler("source", "ping")
    def on_ping(self, data):
        Echo.seen.append(data)


def test_standalone_clients_call_and_dispatch_on_the_cluster_their_uri_names():
    Echo.seen = []
    with SimCluster(seed=1) as cluster:
        cluster.add_service(Echo)
        config = {"AMQP_URI": cluster.uri}
        assert cluster.uri.startswith("sim://cluster-")
        with ServiceRpcProxy("echo", config) as echo:
            assert echo.echo("hellø") == "hellø"
            with pytest.raises(RemoteError, match="ValueError"):
                echo.fail()
        with ClusterRpcProxy(config, context_data={"user_id": "u"}) as proxy:
            assert proxy.echo.echo.call_async(7).result() == 7
        dispatch = event_dispatcher(config)
        dispatch("source", "ping", {"n": 1})
        cluster.advance(1)
        assert Echo.seen == [{"n": 1}]
        kinds = [event.kind for event in cluster.trace.events]
        assert kinds.count("dispatch") == 1  # through the cluster's bus, traced
    # the same uri, once the cluster stopped
    with pytest.raises(ConfigurationError, match="names no running simulated cluster"):
        ServiceRpcProxy("echo", config).start()


def test_two_clusters_have_their_own_uris():
    with SimCluster() as one, SimCluster(virtual_time=False) as two:
        assert one.uri != two.uri


def test_a_sim_uri_cannot_reach_rabbitmq():
    """shimeji run and the AMQP transport refuse it, saying why."""
    settings = Settings.from_config({"AMQP_URI": "sim://cluster-1"})
    with pytest.raises(ConfigurationError, match="names a simulated cluster"):
        AmqpTransport(settings)
    with pytest.raises(ConfigurationError, match="sim:// for a simulated cluster"):
        Settings.from_config({"AMQP_URI": "simx://x"})
