"""A state machine that grows, breaks and heals a cluster while calls fly,
checking the cluster's invariants after every step."""

from __future__ import annotations

import contextlib

from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shimeji.exceptions import PublishFailed, RemoteError, RpcTimeout
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster

TIMEOUT = 3.0
RETRY_BOUND = 0.1 + 0.3 + 0.5
PICK = st.integers(0, 15)


def note_pick(rule: str, replica: str) -> str:
    """The replica a rule picked, named in a failing example's report."""
    note(f"{rule}: {replica}")
    return replica


class Store:
    name = "store"

    @rpc
    def double(self, x, pause):
        import time

        time.sleep(pause)
        return 2 * x


class Front:
    name = "front"
    store = RpcProxy("store")

    @rpc
    def quadruple(self, x):
        return 2 * self.store.double(x, 0.0)


class ClusterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster = SimCluster(seed=0, config={"RPC_TIMEOUT": TIMEOUT})
        self.cluster.start()
        self.cluster.add_service(Store)
        self.cluster.add_service(Front)
        self.client = self.cluster.rpc_proxy(timeout=TIMEOUT)
        self.pending: list = []  # (reply, expected, deadline)
        self.partitioned: list[str] = []
        self.checked_events = 0

    def teardown(self) -> None:
        self.cluster.stop(raise_crashes=False)

    # -- rules --------------------------------------------------------------------------

    @rule(service=st.sampled_from(["store", "front"]))
    def add_replica(self, service):
        self.cluster.add_service(Store if service == "store" else Front)

    # A replica is picked by an index into the candidates of the moment (taken
    # modulo their number): one integer drawn with the rule, which shrinks to
    # the first candidate, rather than a strategy made and drawn from mid-rule.

    @rule(pick=PICK)
    def kill(self, pick):
        alive = [r.name for r in self.cluster.replicas() if r.alive]
        if alive:
            self.cluster.kill(note_pick("kill", alive[pick % len(alive)]))

    @rule(pick=PICK)
    def restart(self, pick):
        dead = [r.name for r in self.cluster.replicas() if not r.alive and not r.waiting]
        if dead:
            self.cluster.restart(note_pick("restart", dead[pick % len(dead)]))

    @rule(pick=PICK)
    def partition(self, pick):
        labels = [
            r.name for r in self.cluster.replicas() if r.alive and r.name not in self.partitioned
        ]
        if labels:
            label = note_pick("partition", labels[pick % len(labels)])
            self.cluster.partition(label)
            self.partitioned.append(label)

    @precondition(lambda self: self.partitioned)
    @rule(pick=PICK)
    def heal(self, pick):
        label = note_pick("heal", self.partitioned[pick % len(self.partitioned)])
        self.partitioned.remove(label)
        self.cluster.heal(label)

    @rule(seconds=st.sampled_from([0.2, 1.0]))
    def outage(self, seconds):
        if not self.cluster.bus.outage:
            self.cluster.broker_outage(seconds)

    @rule(x=st.integers(0, 1000), through_front=st.booleans())
    def call(self, x, through_front):
        start = self.cluster.elapsed()
        try:
            if through_front:
                assert self.client.front.quadruple(x) == 4 * x
            else:
                assert self.client.store.double(x, 0.0) == 2 * x
        except (RpcTimeout, PublishFailed, RemoteError):
            pass
        assert self.cluster.elapsed() - start <= TIMEOUT + 1e-9  # retries included

    @rule(x=st.integers(0, 1000), pause=st.sampled_from([0.0, 0.5, 2.0]))
    def call_async(self, x, pause):
        start = self.cluster.elapsed()
        try:
            reply = self.client.store.double.call_async(x, pause)
        except PublishFailed:
            return
        self.pending.append((reply, 2 * x, start + TIMEOUT))

    @precondition(lambda self: self.pending)
    @rule()
    def collect(self):
        reply, want, deadline = self.pending.pop(0)
        asked = self.cluster.elapsed()
        with contextlib.suppress(RpcTimeout):
            assert reply.result() == want
        assert self.cluster.elapsed() <= max(asked, deadline) + 1e-9

    @rule(x=st.integers(0, 1000))
    def recover_then_call(self, x):
        """Once every fault is healed (partitions mended, a replica of each service
        running, the broker back), calls succeed again, with the right results."""
        for label in list(self.partitioned):
            self.partitioned.remove(label)
            self.cluster.heal(label)
        for service in ("store", "front"):
            replicas = self.cluster.replicas(service)
            if not any(r.alive or r.waiting for r in replicas):
                self.cluster.restart(replicas[0])
        self.cluster.advance(TIMEOUT + RETRY_BOUND)  # outages end, waiting replicas start
        assert self.client.front.quadruple(x) == 4 * x
        assert self.client.store.double(x, 0.0) == 2 * x

    @rule(seconds=st.sampled_from([0.001, 0.5, 4.0]))
    def advance(self, seconds):
        self.cluster.advance(seconds)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def no_caller_waits_past_its_deadline(self):
        now = self.cluster.elapsed()
        for reply, _, deadline in self.pending:
            # A call's timer fires at its deadline, maybe after the event that
            # returned control here at that same instant: due means past it.
            if now > deadline + 1e-9:
                assert reply.waiter.done, reply

    @invariant()
    def replies_reach_only_their_callers(self):
        trace = self.cluster.trace
        events = trace.events
        for event in events[self.checked_events :]:
            if event.kind == "deliver" and event.is_reply:
                assert event.replica == trace.caller_of(event.correlation_id)
        self.checked_events = len(events)

    @invariant()
    def only_live_connected_replicas_consume(self):
        alive = {r.name for r in self.cluster.replicas() if r.alive}
        for queue in self.cluster.bus.queues.values():
            for consumer in queue.consumers:
                if consumer.label.startswith(("store-", "front-")):
                    assert consumer.label in alive
                    assert consumer.label not in self.partitioned
                assert len(consumer.unacked) <= consumer.prefetch or consumer.prefetch == 0

    @invariant()
    def every_message_is_somewhere_once(self):
        for queue in self.cluster.bus.queues.values():
            held = [d.message.correlation_id for c in queue.consumers for d in c.unacked.values()]
            assert len(held) == len(set(held)) or any(
                "Duplicate" in str(f) for f in self.cluster.fault_plan
            )


ClusterMachine.TestCase.settings = settings(
    settings.get_profile(settings._current_profile),  # type: ignore[attr-defined]
    stateful_step_count=30,
)
TestClusterMachine = ClusterMachine.TestCase
