"""Never hangs: a caller waiting on something that can never come gets SimulationStalled."""

from __future__ import annotations

import pytest

from shimeji.exceptions import ConfigurationError, ContainerBeingKilled, RpcTimeout
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster, SimulationStalled
from shimeji.sim.faults import Drop
from shimeji.timer import timer


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
        assert text.splitlines()[0] == (
            "the simulation stalled at t=0.001000s: the test waits for a reply from "
            "self_caller.outer to client, and nothing left to run can ever bring it."
        )
        assert caught.value.stuck == [
            "client waits for a reply from self_caller.outer (correlation id "
            "f7c1bd87-4da5-4709-9471-3d60c8a70639), sent at t=0.000000s",
            "self_caller-1, running self_caller.outer.e443df78-9558-467f-9ba9-1faf7a024204, "
            "waits for a reply from self_caller.inner (correlation id "
            "23a7711a-8133-4876-b7eb-dcd9e87a1613), sent at t=0.001000s",
            "queue rpc-self_caller holds 1 message nobody takes: its one consumer, "
            "self_caller-1, is at its prefetch limit (max_workers=1)",
        ]
        assert "What waits, and for what:\n  - client waits" in text
        assert "give the call a timeout" in text
        # No phrase reads "is <someone> waiting", as the first version did.
        assert " is client waiting" not in text and "is self_caller-1 waiting" not in text


def test_stalled_is_importable_with_every_other_exception():
    """shimeji.exceptions has it, and the simulator raises that very class."""
    import shimeji.exceptions
    import shimeji.sim

    assert shimeji.exceptions.SimulationStalled is shimeji.sim.SimulationStalled
    assert issubclass(shimeji.exceptions.SimulationStalled, shimeji.exceptions.ShimejiError)


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


# -- a wait that other events keep going for ever ------------------------------------


class Ticking:
    """A timer that ticks for ever, and a method whose reply a test can lose."""

    name = "ticking"
    ticks = 0

    @timer(interval=1)
    def tick(self):
        Ticking.ticks += 1

    @rpc
    def ping(self):
        return "pong"

    @rpc
    def nap(self, seconds):
        import time

        time.sleep(seconds)
        return "rested"


def test_a_lost_reply_while_a_timer_ticks_stalls_after_max_wait():
    """The reply is lost and the call has no timeout: the timer alone would keep
    the simulation going for ever; the wait stalls at max_wait instead, saying so."""
    Ticking.ticks = 0
    with SimCluster(faults=[Drop(direction="reply")], max_wait=60) as cluster:
        cluster.add_service(Ticking)
        with pytest.raises(SimulationStalled) as caught:
            cluster.rpc.ticking.ping()
        first = str(caught.value).splitlines()[0]
        assert first.startswith("the simulation stalled at t=60.000000s: the test waited 60 ")
        assert "a reply from ticking.ping to client" in first
        assert "raise SimCluster(max_wait=...)" in str(caught.value)
        assert caught.value.stuck[0].startswith("client waits for a reply from ticking.ping")
        assert 59 <= Ticking.ticks <= 61  # the timer ran meanwhile


def test_the_default_limit_is_a_day_of_virtual_time():
    Ticking.ticks = 0
    with SimCluster(faults=[Drop(direction="reply")]) as cluster:
        cluster.add_service(Ticking)
        with pytest.raises(SimulationStalled, match=r"waited 86400 virtual seconds"):
            cluster.rpc.ticking.ping()


def test_a_wait_longer_than_max_wait_is_allowed_by_raising_it():
    """A worker sleeping past max_wait stalls the wait; max_wait=None lets it finish."""
    with SimCluster(max_wait=10) as cluster:
        cluster.add_service(Ticking)
        with pytest.raises(SimulationStalled, match="waited 10 virtual seconds"):
            cluster.rpc.ticking.nap(20)
    with SimCluster(max_wait=None) as cluster:
        cluster.add_service(Ticking)
        assert cluster.rpc.ticking.nap(3 * 86_400) == "rested"
        assert cluster.elapsed() >= 3 * 86_400


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "60"])
def test_max_wait_must_be_positive_seconds_or_none(bad):
    with pytest.raises(ConfigurationError, match="max_wait must be virtual seconds > 0"):
        SimCluster(max_wait=bad)


def test_max_wait_can_be_changed_on_a_running_cluster(sim_cluster):
    """The sim_cluster fixture's cluster waits longer once told to."""
    assert sim_cluster.max_wait == 86_400
    sim_cluster.add_service(Ticking)
    sim_cluster.max_wait = 5
    with pytest.raises(SimulationStalled, match="waited 5 virtual seconds"):
        sim_cluster.rpc.ticking.nap(6)
    sim_cluster.max_wait = None
    assert sim_cluster.max_wait is None
    assert sim_cluster.rpc.ticking.nap(2 * 86_400) == "rested"
    with pytest.raises(ConfigurationError, match="max_wait must be"):
        sim_cluster.max_wait = 0
