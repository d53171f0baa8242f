"""Never hangs: a caller waiting on something that can never come gets SimulationStalled."""

from __future__ import annotations

import pytest

from shimeji.exceptions import ContainerBeingKilled, RpcTimeout
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster, SimulationStalled


class SelfCaller:
    name = "self_caller"
    me = RpcProxy("self_caller")

    @rpc
    def outer(self):
        return self.me.inner()

    @rpc
    def inner(self):
        return "inner"


def test_replica_calling_itself_with_one_worker_stalls():
    """max_workers=1 and a call to itself: SimulationStalled names the stuck calls."""
    with SimCluster(config={"max_workers": 1}) as cluster:
        cluster.add_service(SelfCaller)
        with pytest.raises(SimulationStalled) as caught:
            cluster.rpc.self_caller.outer()
        text = str(caught.value)
        assert "waiting for self_caller.outer" in text
        assert "self_caller-1 waits for a reply from self_caller.inner" in text
        assert "queue rpc-self_caller holds 1 message(s)" in text
        assert "max_workers=1" in text


def test_with_a_timeout_it_times_out_instead():
    """With a deadline the same situation ends in RpcTimeout, not a stall."""
    with SimCluster(config={"max_workers": 1}) as cluster:
        cluster.add_service(SelfCaller)
        with pytest.raises(RpcTimeout):
            cluster.rpc_proxy(timeout=5).self_caller.outer()


class Lonely:
    name = "lonely"

    @rpc
    def ping(self):
        return "pong"


def test_service_with_no_running_replica_stalls():
    """A queue with no consumer: the stall report says so."""
    with SimCluster() as cluster:
        (replica,) = cluster.add_service(Lonely)
        replica.container.kill()
        with pytest.raises(
            SimulationStalled,
            match=r"queue rpc-lonely holds 1 message.*no "
            r"replica consumes it",
        ):
            cluster.rpc.lonely.ping()


def test_stop_after_a_stall_kills_stuck_workers():
    """Stopping a cluster whose workers can never finish kills them; stop returns."""
    cluster = SimCluster(config={"max_workers": 1})
    cluster.start()
    cluster.add_service(SelfCaller)
    reply = cluster.rpc.self_caller.outer.call_async()
    cluster.run_until_idle()
    cluster.stop()
    assert cluster.state == "stopped"
    assert cluster.trace.filter("replica_killed")
    with pytest.raises(ContainerBeingKilled, match=r"closed while waiting for self_caller\.outer"):
        reply.result()
