"""Calls under a lost broker connection, after the toxiproxy tests of nameko's
``test/test_rpc.py`` (``TestProxyDisconnections``,
``TestReplyListenerDisconnections``, ``TestRpcConsumerDisconnections``,
``TestResponderDisconnections``) and ``test/standalone/test_rpc_proxy.py``
(``TestStandaloneProxyDisconnections`` and
``TestStandaloneProxyConsumerDisconnections``: a simulated partition cuts a
client's publishing and consuming together).

nameko cuts a connection with toxiproxy between the test and RabbitMQ; here
the simulator cuts it (``sim_cluster.partition``, or a ``Partition`` fault
that heals by itself). Where nameko's tests turn publish retries off to see
the error at once, shimeji's retry policy stays on: its window passes in
virtual time, and the call then fails with ``PublishFailed`` (nameko:
``OperationalError`` or ``IOError``). The half-open and stalled sockets of
nameko's ``*_timeout`` and ``*_blackhole`` tests have no simulated fault, and
publisher confirms are not a choice in shimeji (they are always on), so
those variants are not ported; nor the responder tests that expect its
container to die (docs/fidelity.md, "Against nameko's own tests").
"""

from __future__ import annotations

import time

import pytest

from shimeji.exceptions import PublishFailed
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim.faults import FaultPlan, Partition
from shimeji.standalone import ServiceRpcProxy
from shimeji.testing.services import dummy, entrypoint_hook, entrypoint_waiter
from shimeji.testing.waiting import wait_for_call

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class Server:
    name = "server"

    @rpc
    def echo(self, arg):
        return arg


class Client:
    name = "client"

    server_rpc = RpcProxy("server")

    @dummy
    def echo(self, arg):
        return self.server_rpc.echo(arg)


def heals_after(sim_cluster, label, seconds):
    """Cut ``label`` off the broker now, for ``seconds`` of virtual time."""
    now = sim_cluster.clock.elapsed()
    sim_cluster.add_faults(FaultPlan([Partition(label, at=now, duration=seconds)]))
    sim_cluster.advance(0)  # the cut happens now


@pytest.fixture
def service_rpc(rabbit_config):
    """A standalone proxy of the server, as nameko's ``service_rpc`` fixtures."""
    with ServiceRpcProxy("server", rabbit_config) as proxy:
        yield proxy


class TestProxyDisconnections:
    @pytest.fixture(autouse=True)
    def server_container(self, container_factory, rabbit_config):
        container = container_factory(Server, rabbit_config)
        container.start()

    @pytest.fixture
    def client_container(self, container_factory, rabbit_config):
        container = container_factory(Client, rabbit_config)
        container.start()
        return container

    # follows nameko test/test_rpc.py::TestProxyDisconnections::test_normal
    def test_normal(self, client_container):
        with entrypoint_hook(client_container, "echo") as echo:
            assert echo(1) == 1
            assert echo(2) == 2

    # follows nameko test/test_rpc.py::TestProxyDisconnections::test_down
    def test_down(self, client_container, sim_cluster):
        sim_cluster.partition(client_container.replica)
        with (
            pytest.raises(PublishFailed) as exc_info,
            entrypoint_hook(client_container, "echo") as echo,
        ):
            echo(1)
        assert exc_info.value.attempts > 1  # the retry policy was followed to its end

    # follows nameko test/test_rpc.py::TestProxyDisconnections::test_reuse_when_down
    # follows nameko test/test_rpc.py::TestProxyDisconnections::test_reuse_when_recovered
    def test_reuse_when_down_and_recovered(self, client_container, sim_cluster):
        with entrypoint_hook(client_container, "echo") as echo:
            assert echo(1) == 1

        sim_cluster.partition(client_container.replica)
        with pytest.raises(PublishFailed), entrypoint_hook(client_container, "echo") as echo:
            echo(2)

        sim_cluster.heal(client_container.replica)
        with entrypoint_hook(client_container, "echo") as echo:
            assert echo(3) == 3

    # follows nameko test/test_rpc.py::TestProxyDisconnections::test_with_retry_policy
    def test_with_retry_policy(self, client_container, sim_cluster):
        with entrypoint_hook(client_container, "echo") as echo:
            assert echo(1) == 1

        heals_after(sim_cluster, client_container.replica.name, 2)
        t0 = time.time()
        # call 2 succeeds, once a retry finds the connection back
        with entrypoint_hook(client_container, "echo") as echo:
            assert echo(2) == 2
        assert time.time() - t0 >= 2


class TestStandaloneProxyDisconnections:
    @pytest.fixture(autouse=True)
    def container(self, container_factory, rabbit_config):
        container = container_factory(Server, rabbit_config)
        container.start()
        return container

    #: the label the cluster gives the test's one standalone client
    CLIENT = "client"

    # follows nameko test/standalone/test_rpc_proxy.py::TestStandaloneProxyDisconnections::test_normal
    # follows nameko test/standalone/test_rpc_proxy.py::TestStandaloneProxyConsumerDisconnections::test_normal
    def test_normal(self, service_rpc):
        assert service_rpc.echo(1) == 1
        assert service_rpc.echo(2) == 2

    # follows nameko test/standalone/test_rpc_proxy.py::TestStandaloneProxyDisconnections::test_down
    # follows nameko test/standalone/test_rpc_proxy.py::TestStandaloneProxyConsumerDisconnections::test_down
    def test_down(self, service_rpc, sim_cluster):
        sim_cluster.partition(self.CLIENT)
        with pytest.raises(PublishFailed):
            service_rpc.echo(1)

    # follows nameko test/standalone/test_rpc_proxy.py::TestStandaloneProxyDisconnections::test_reuse_when_down
    # follows nameko test/standalone/test_rpc_proxy.py::TestStandaloneProxyConsumerDisconnections::test_reuse_when_down
    # follows nameko test/standalone/test_rpc_proxy.py::TestStandaloneProxyDisconnections::test_reuse_when_recovered
    def test_reuse_when_down_and_recovered(self, service_rpc, sim_cluster):
        assert service_rpc.echo(1) == 1

        sim_cluster.partition(self.CLIENT)
        with pytest.raises(PublishFailed):
            service_rpc.echo(2)

        sim_cluster.heal(self.CLIENT)
        assert service_rpc.echo(3) == 3

    # follows nameko test/standalone/test_rpc_proxy.py::TestStandaloneProxyDisconnections::test_with_retry_policy
    def test_with_retry_policy(self, service_rpc, sim_cluster):
        assert service_rpc.echo(1) == 1

        heals_after(sim_cluster, self.CLIENT, 2)
        # subsequent calls succeed, after reconnecting through the retry policy
        assert service_rpc.echo(2) == 2


class TestReplyListenerDisconnections:
    """The connection a service's RPC proxy reads its replies on is lost, and
    comes back: calls work again."""

    @pytest.fixture(autouse=True)
    def server_container(self, container_factory, rabbit_config):
        container_factory(Server, rabbit_config).start()

    @pytest.fixture
    def container(self, container_factory, rabbit_config):
        container = container_factory(Client, rabbit_config)
        container.start()
        return container

    # follows nameko test/test_rpc.py::TestReplyListenerDisconnections::test_normal
    def test_normal(self, container):
        with entrypoint_hook(container, "echo") as echo:
            assert echo("foo") == "foo"

    # follows nameko test/test_rpc.py::TestReplyListenerDisconnections::test_down
    def test_down(self, container, sim_cluster):
        heals_after(sim_cluster, container.replica.name, 1)
        sim_cluster.advance(2)
        # connection re-established
        with entrypoint_hook(container, "echo") as echo:
            assert echo("foo") == "foo"


class TestRpcConsumerDisconnections:
    """The connection a service consumes its requests on is lost, and comes
    back: it answers again, the calls made meanwhile too."""

    @pytest.fixture(autouse=True)
    def container(self, container_factory, rabbit_config):
        container = container_factory(Server, rabbit_config)
        container.start()
        return container

    # follows nameko test/test_rpc.py::TestRpcConsumerDisconnections::test_normal
    def test_normal(self, service_rpc):
        assert service_rpc.echo("foo") == "foo"

    # follows nameko test/test_rpc.py::TestRpcConsumerDisconnections::test_down
    def test_down(self, container, service_rpc, sim_cluster):
        heals_after(sim_cluster, container.replica.name, 1)
        t0 = time.time()
        # sent while the consumer is cut off, answered once it is back
        assert service_rpc.echo("foo") == "foo"
        assert time.time() - t0 >= 1
        assert service_rpc.echo("bar") == "bar"


class SlowServer:
    name = "server"

    @rpc
    def echo(self, arg):
        time.sleep(1)
        return arg


class TestResponderDisconnections:
    """The service loses its connection while a worker runs, so its reply
    cannot be published at first."""

    @pytest.fixture(autouse=True)
    def container(self, container_factory, rabbit_config):
        container = container_factory(SlowServer, rabbit_config)
        container.start()
        return container

    # follows nameko test/test_rpc.py::TestResponderDisconnections::test_normal
    def test_normal(self, service_rpc):
        assert service_rpc.echo(1) == 1
        assert service_rpc.echo(2) == 2

    # follows nameko test/test_rpc.py::TestResponderDisconnections::test_with_retry_policy
    def test_with_retry_policy(self, container, service_rpc, sim_cluster):
        assert service_rpc.echo(1) == 1

        with wait_for_call(container, "spawn_worker"):
            reply = service_rpc.echo.call_async(2)
        # cut off while the worker runs, back 2 s later
        heals_after(sim_cluster, container.replica.name, 2)

        # the call succeeds, once the replica is back
        assert reply.result() == 2
        assert service_rpc.echo(3) == 3


# follows nameko test/test_rpc.py::TestRpcConsumerDisconnections::test_message_ack_regression
def test_message_ack_regression(container_factory, rabbit_config, sim_cluster):
    """The connection drops while a worker runs: its request cannot be acked,
    so it is delivered again once the connection is back and handled again;
    the caller gets its reply, and the container works on. (nameko cuts the
    consuming connection only, so its reply goes out at once; a simulated
    partition cuts the replica's publishing too, so the reply goes out, by
    the retry policy, once it is back.)"""
    container = container_factory(SlowServer, rabbit_config)
    container.start()

    with ServiceRpcProxy("server", rabbit_config) as service_rpc:
        with entrypoint_waiter(container, "echo") as result:
            with wait_for_call(container, "spawn_worker"):
                res = service_rpc.echo.call_async("msg1")
            heals_after(sim_cluster, container.replica.name, 2)
        assert result.get() == "msg1"

        # the initiating message is delivered again, and handled again
        with entrypoint_waiter(container, "echo") as again:
            assert res.result() == "msg1"
        assert again.get() == "msg1"
        assert again.worker_ctx.call_id != result.worker_ctx.call_id

        # connection re-established: the container works again
        assert service_rpc.echo("msg2") == "msg2"
