"""Real threads and real sockets feeding the simulation (shimeji.sim.bridge, .listener)."""

from __future__ import annotations

import queue
import re
import threading
import time
import urllib.error
import urllib.request

import pytest

from shimeji.exceptions import ConfigurationError, SimulationStalled
from shimeji.extensions import Entrypoint
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster, UncontrolledEffectWarning
from shimeji.sim.bridge import OutsideClosed, RealManagedThread, wants_real_thread
from shimeji.sim.listener import RealHttpListener
from shimeji.sim.scheduler import SimTask
from shimeji.web import http

pytestmark = pytest.mark.filterwarnings("ignore::shimeji.sim.UncontrolledEffectWarning")

#: Items put by the test, read by the entrypoint's real thread (a real blocking
#: get): a queue of each test's own, so that a thread left running by one test
#: never takes the next test's items.
INBOXES: list[queue.Queue] = [queue.Queue()]
#: What the real thread saw when spawn_worker was refused.
REFUSALS: list[BaseException] = []


class QueueReceive(Entrypoint):
    """An entrypoint whose polling loop blocks on a real queue, as nameko's SQS example."""

    def start(self):
        self.container.spawn_managed_thread(self.run, identifier="QueueReceive.run")

    def run(self):
        inbox = INBOXES[-1]
        while True:
            item = inbox.get()
            if item is None:
                return
            try:
                self.container.spawn_worker(self, (item,), {})
            except Exception as exc:
                REFUSALS.append(exc)
                raise


receive = QueueReceive.decorator


class Consumer:
    name = "consumer"
    seen: list[tuple[str, float]] = []

    @receive
    def handle(self, item):
        import time

        Consumer.seen.append((item, time.time()))
        time.sleep(1)  # virtual: the worker is a task of the simulation
        return item


@pytest.fixture(autouse=True)
def _fresh():
    INBOXES.append(queue.Queue())
    REFUSALS.clear()
    Consumer.seen = []
    yield
    INBOXES[-1].put(None)  # ends a thread a test left running


def _cluster() -> SimCluster:
    cluster = SimCluster(seed=3)
    cluster.real_managed_threads = True
    return cluster


def _real_thread(cluster: SimCluster) -> RealManagedThread:
    container = cluster.replicas("consumer")[0].container
    (thread,) = [t for t in container._managed if isinstance(t, RealManagedThread)]
    return thread


def test_a_real_thread_blocking_on_a_real_queue_feeds_workers():
    """Items a real thread receives run in workers, in virtual time, in arrival order."""
    with _cluster() as cluster:
        cluster.add_service(Consumer)
        time.sleep(0.01)  # virtual: the replica starts
        INBOXES[-1].put("a")
        INBOXES[-1].put("b")
        cluster.scheduler.run_root(lambda: len(Consumer.seen) == 2, "two items")
        assert [item for item, _ in Consumer.seen] == ["a", "b"]
        assert _real_thread(cluster).thread.is_alive()
    assert cluster.crashes == []


def test_the_real_thread_is_reported_as_uncontrolled():
    """A managed thread on a real thread is an uncontrolled effect: warned and kept."""
    warns = pytest.warns(UncontrolledEffectWarning, match="managed thread consumer-1:QueueReceive")
    with warns, _cluster() as cluster:
        cluster.add_service(Consumer)
        time.sleep(0.01)  # virtual: the replica starts
    assert any("runs on a real thread" in line for line in cluster.uncontrolled)


def test_a_real_thread_alive_at_stop_is_abandoned_and_refused():
    """At stop the real thread is abandoned; what it asks afterwards is refused in
    the thread, which ends quietly, and the test is not disturbed."""
    errors: list[object] = []
    hook, threading.excepthook = threading.excepthook, errors.append
    try:
        with _cluster() as cluster:
            cluster.add_service(Consumer)
            time.sleep(0.01)  # virtual: the replica starts
            real = _real_thread(cluster)
            assert real.thread.is_alive() and not real.done
        assert real.done  # abandoned: the loop no longer waits for it
        assert cluster.scheduler._outside_live == 0
        INBOXES[-1].put("late")
        real.thread.join(60)
        assert not real.thread.is_alive()
    finally:
        threading.excepthook = hook
    assert errors == [] and Consumer.seen == []
    assert len(REFUSALS) == 1 and "consumer-1 is stopped" in str(REFUSALS[0])


def test_a_replica_stopped_alone_refuses_its_abandoned_thread():
    """A replica stopped while its real thread lives: the cluster goes on, the thread's
    next spawn_worker is refused with ContainerBeingKilled."""
    with _cluster() as cluster:
        (replica,) = cluster.add_service(Consumer)
        time.sleep(0.01)  # virtual: the replica starts
        real = _real_thread(cluster)
        replica.container.stop()
        INBOXES[-1].put("after stop")
        real.thread.join(60)
        assert not real.thread.is_alive() and Consumer.seen == []
        assert "is stopped" in str(REFUSALS[0])
    assert cluster.crashes == []


def test_waiting_for_a_silent_real_thread_stalls_with_a_clear_error():
    """A root that waits for what only a silent real thread could bring stalls after
    ``idle_limit`` real seconds, naming the thread."""
    with _cluster() as cluster:
        cluster.add_service(Consumer)
        time.sleep(0.01)  # virtual: the replica starts
        cluster.scheduler.outside.idle_limit = 0.2
        with pytest.raises(SimulationStalled) as stalled:
            cluster.scheduler.run_root(lambda: bool(Consumer.seen), "an item")
    message = str(stalled.value)
    assert re.search(r"waited \d+\.\d real seconds for real threads", message)
    assert "managed thread consumer-1:QueueReceive.run, on a real thread" in message


def test_virtual_time_follows_real_time_while_waiting_for_a_real_thread():
    """While the loop waits for a real thread, a timer falls due no sooner in real
    time than its virtual delay: a sleep of the test takes that long."""
    import time

    from shimeji.sim.clock import real_perf_counter

    with _cluster() as cluster:
        cluster.add_service(Consumer)
        time.sleep(0.01)  # virtual: the replica starts
        started_real, started = real_perf_counter(), time.time()
        time.sleep(0.3)
        assert time.time() - started == pytest.approx(0.3)
        assert real_perf_counter() - started_real >= 0.25


class Failing(Entrypoint):
    """An entrypoint whose real thread fails."""

    def start(self):
        self.container.spawn_managed_thread(self.run)

    def run(self):
        INBOXES[-1].get()
        raise ValueError("the queue went away")


class Fragile:
    name = "fragile"

    @Failing.decorator
    def handle(self):
        pass


def test_an_error_escaping_a_real_thread_kills_its_replica():
    """As in nameko, an error escaping a managed thread kills the replica; on a real
    thread the kill is run on the simulation's thread."""
    with _cluster() as cluster:
        (replica,) = cluster.add_service(Fragile)
        time.sleep(0.01)  # virtual: the replica starts
        INBOXES[-1].put("go")
        container = replica.container
        cluster.scheduler.run_root(lambda: not container.alive, "the replica to die")
        assert "the queue went away" in str(container.crash)
        cluster.crashes.clear()


def test_managed_threads_stay_tasks_by_default():
    """Without the nameko layer or real_managed_threads, a managed thread is a task in
    virtual time; shimeji's own functions never get a real thread."""
    with SimCluster() as cluster:
        (replica,) = cluster.add_service(Consumer, start=False)
        replica.start()
        (task,) = replica.container._managed
        assert isinstance(task, SimTask)
        scheduler = cluster.scheduler
        scheduler.real_managed_threads = True
        assert wants_real_thread(scheduler, test_managed_threads_stay_tasks_by_default)
        assert not wants_real_thread(scheduler, SimCluster.stop)
        replica.container.kill()


def test_real_managed_threads_takes_a_bool_or_none():
    """A value other than True, False or None is refused, naming it."""
    cluster = SimCluster()
    with pytest.raises(ConfigurationError, match=r"True, False or None .* got 'yes'"):
        cluster.real_managed_threads = "yes"
    cluster.real_managed_threads = False
    assert cluster.scheduler.real_managed_threads is False


def test_work_posted_after_the_cluster_stopped_is_refused():
    """Posting to a closed inbox raises OutsideClosed (a ContainerBeingKilled)."""
    with SimCluster() as cluster:
        outside = cluster.scheduler.outside_inbox()
    with pytest.raises(OutsideClosed, match="no longer taken"):
        outside.post(print)
    with pytest.raises(OutsideClosed, match="no longer taken"):
        outside.call(print)


def test_a_call_interrupted_on_the_simulations_thread_ends_its_caller_cleanly():
    """A KeyboardInterrupt while the simulation's thread runs a real thread's call
    goes on up the simulation's thread; the real thread gets OutsideClosed
    (which ends a managed thread quietly), not a None result."""
    errors: list[BaseException] = []

    def interrupted() -> None:
        raise KeyboardInterrupt

    with SimCluster() as cluster:
        outside = cluster.scheduler.outside_inbox()
        token = outside.add_source("the test's client thread")

        def client() -> None:
            try:
                outside.call(interrupted)
            except BaseException as exc:
                errors.append(exc)
            finally:
                outside.drop_source(token)

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        with pytest.raises(KeyboardInterrupt):
            cluster.scheduler.run_root(lambda: bool(errors), "the client's error")
        thread.join(60)
    (error,) = errors
    assert isinstance(error, OutsideClosed)
    assert "interrupted (KeyboardInterrupt)" in str(error)


# -- a real socket in front of the routes ---------------------------------------------------

ADDRESS: list[str] = []


class FakeApi:
    name = "fake_api"

    @http("GET", "/status")
    def status(self, request):
        return '{"ok": true}'

    greeter = RpcProxy("greeter")

    @http("GET", "/needs-rpc")
    def needs_rpc(self, request):
        return self.greeter.hello()


class Greeter:
    name = "greeter"

    @rpc
    def hello(self):
        return "hello"

    @rpc
    def fetch(self, path):
        try:
            with urllib.request.urlopen(f"http://{ADDRESS[0]}{path}", timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture
def listening():
    cluster = SimCluster(seed=5)
    cluster.start()
    listener = RealHttpListener(cluster)
    ADDRESS[:] = [listener.address]
    cluster.add_service(FakeApi)
    cluster.add_service(Greeter)
    cluster.listener = listener  # for the tests that set its grace
    yield cluster
    listener.close()
    cluster.stop()


def test_a_route_answers_a_worker_blocked_on_its_real_socket(listening):
    """A worker calling a route over a real socket blocks the simulation's thread:
    the listener runs the route on its own thread, and the worker gets the answer."""
    assert listening.rpc.greeter.fetch("/status") == [200, '{"ok": true}']
    assert any("came from a real socket" in line for line in listening.uncontrolled)


def test_a_route_that_needs_the_blocked_simulation_fails_clearly(listening):
    """A route answered outside virtual time that makes an RPC fails at once with
    OutsideVirtualTime (500), rather than deadlock."""
    status, body = listening.rpc.greeter.fetch("/needs-rpc")
    assert status == 500
    assert "OutsideVirtualTime" in body and "outside virtual time" in body


def test_a_request_from_a_real_thread_runs_in_virtual_time(listening):
    """A request the simulation's thread is free to take goes through the simulated
    front in virtual time: it is traced as any request."""
    answers: list[tuple[int, str]] = []
    # the simulation's thread is free: it takes the request however loaded the
    # machine is (a short grace would send it to the listener's thread instead)
    listening.listener.grace = 60.0
    outside = listening.scheduler.outside_inbox()
    token = outside.add_source("the test's client thread")  # the loop waits for it

    def client() -> None:
        try:
            with urllib.request.urlopen(f"http://{ADDRESS[0]}/status", timeout=10) as reply:
                answers.append((reply.status, reply.read().decode()))
        finally:
            outside.drop_source(token)  # wakes the loop: nothing more will come

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    listening.scheduler.run_root(lambda: bool(answers), "the client's answer")
    thread.join(60)
    assert answers == [(200, '{"ok": true}')]
    kinds = [(e.kind, e.replica) for e in listening.trace.events if e.method == "status"]
    assert ("publish", "http") in kinds and ("deliver", "fake_api-1") in kinds


def test_the_listener_answers_503_once_the_cluster_stopped():
    """A request reaching a listener whose cluster stopped is answered 503."""
    cluster = SimCluster()
    cluster.start()
    listener = RealHttpListener(cluster)
    cluster.stop()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{listener.address}/status", timeout=10)
        assert refused.value.code == 503
    finally:
        listener.close()


def test_the_listener_refuses_a_bad_grace_and_closes_once():
    """A grace that is not real seconds >= 0 is refused, naming it; closing twice
    is harmless, and the port is free after."""
    cluster = SimCluster()
    with pytest.raises(ValueError, match=r"grace is real seconds >= 0, got -1"):
        RealHttpListener(cluster, grace=-1)
    with RealHttpListener(cluster) as listener:
        address = listener.address
    listener.close()
    assert not listener._thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{address}/status", timeout=10)
