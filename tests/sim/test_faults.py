"""Every fault: its effect in the trace and on the caller."""

from __future__ import annotations

import json
import time

import pytest

from shimeji.exceptions import (
    ConfigurationError,
    FaultPlanError,
    MalformedReply,
    MalformedRequest,
    PublishFailed,
    RpcTimeout,
)
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.sim.faults import (
    BrokerOutage,
    Corrupt,
    Crash,
    CrashDuring,
    Delay,
    Drop,
    Duplicate,
    FaultPlan,
    Partition,
)

from .services import CalculatorService


def requests_delivered(cluster, method):
    return [
        (e.replica, e.detail)
        for e in cluster.trace.filter("deliver", method=method)
        if not e.is_reply
    ]


def only_big(direction, service, method, message):
    """A predicate: requests whose first argument is above 100."""
    args = json.loads(message.body)["args"]
    return bool(args) and args[0] > 100


# -- Drop ---------------------------------------------------------------------------------


def test_dropped_request_times_out_then_the_next_call_works():
    """A dropped request never reaches a replica: the caller times out; count=1 only once."""
    with SimCluster(faults=[Drop(service="calculator", method="add")]) as cluster:
        cluster.add_service(CalculatorService)
        client = cluster.rpc_proxy(timeout=2)
        with pytest.raises(RpcTimeout):
            client.calculator.add(1, 2)
        assert client.calculator.add(1, 2) == 3
        (drop,) = cluster.trace.filter("fault_drop")
        assert drop.detail == "request calculator.add lost"
        assert len(requests_delivered(cluster, "add")) == 1


def test_dropped_reply_after_the_work_was_done():
    """A dropped reply: the worker ran and acked, the caller still times out."""
    with SimCluster(faults=[Drop(direction="reply", service="calculator")]) as cluster:
        cluster.add_service(CalculatorService)
        with pytest.raises(RpcTimeout):
            cluster.rpc_proxy(timeout=1).calculator.multiply(3, 4)
        assert cluster.trace.filter("worker_end", method="multiply")
        assert cluster.trace.filter("ack", method="multiply")
        assert cluster.trace.filter("fault_drop")[0].detail == "reply calculator.multiply lost"


def test_drop_by_probability_is_seeded():
    """probability draws from the seeded RNG: same seed, same losses."""

    def run(seed):
        plan = [Drop(service="calculator", count=None, probability=0.5)]
        with SimCluster(seed=seed, faults=plan) as cluster:
            cluster.add_service(CalculatorService)
            client = cluster.rpc_proxy(timeout=1)
            lost = []
            for i in range(20):
                try:
                    client.calculator.add(i, 0)
                except RpcTimeout:
                    lost.append(i)
            return lost

    first = run(11)
    assert first == run(11)
    assert 3 < len(first) < 17
    assert first != run(12)


def test_drop_by_predicate_and_skip():
    """A predicate picks the messages; skip lets the first matches through."""
    plan = [Drop(service="calculator", count=None, predicate=only_big, skip=1)]
    assert repr(plan[0]).endswith("predicate='tests.sim.test_faults:only_big')")
    with SimCluster(faults=plan) as cluster:
        cluster.add_service(CalculatorService)
        client = cluster.rpc_proxy(timeout=1)
        assert client.calculator.echo(150) == 150  # matches, but skipped
        with pytest.raises(RpcTimeout):
            client.calculator.echo(160)
        assert client.calculator.echo(5) == 5  # does not match


# -- Delay --------------------------------------------------------------------------------


def test_delayed_reply_arrives_out_of_order():
    """A delayed reply is overtaken by a later one; both callers get their own result."""
    plan = [Delay(seconds=3, direction="reply", service="calculator", count=1)]
    with SimCluster(faults=plan) as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        first = cluster.rpc.calculator.multiply.call_async(2, 2)
        second = cluster.rpc.calculator.multiply.call_async(3, 3)
        assert (first.result(), second.result()) == (4, 9)
        replies = [e.correlation_id for e in cluster.trace.filter("deliver") if e.is_reply]
        assert replies == [second.correlation_id, first.correlation_id]
        assert "held 3.000000s" in cluster.trace.filter("fault_delay")[0].detail


def test_delay_past_the_timeout_makes_a_late_reply():
    """A reply delayed past the timeout: RpcTimeout, then the late reply is dropped."""
    plan = [Delay(seconds=5, direction="reply")]
    with SimCluster(faults=plan) as cluster:
        cluster.add_service(CalculatorService)
        with pytest.raises(RpcTimeout):
            cluster.rpc_proxy(timeout=1).calculator.add(1, 1)
        cluster.advance(10)
        assert "late reply for calculator.add" in cluster.trace.filter("reply_dropped")[0].detail


def test_delay_jitter_is_seeded():
    """jitter comes from the seeded RNG."""

    def held(seed):
        plan = [Delay(seconds=0.5, jitter=1.0)]
        with SimCluster(seed=seed, faults=plan) as cluster:
            cluster.add_service(CalculatorService)
            cluster.rpc.calculator.add(1, 1)
            return [e.detail for e in cluster.trace.filter("fault_delay")]

    assert held(3) == held(3) != held(4)


# -- Duplicate ----------------------------------------------------------------------------


def test_duplicate_request_runs_twice_caller_gets_one_result():
    """A duplicated request runs twice (the copy marked redelivered); one result returns."""
    with SimCluster(faults=[Duplicate(service="calculator")]) as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        assert cluster.rpc.calculator.add(2, 2) == 4
        cluster.run_until_idle()
        assert requests_delivered(cluster, "add") == [
            ("calculator-1", ""),
            ("calculator-2", "redelivered"),
        ]
        assert len(cluster.trace.filter("worker_start", method="add")) == 2
        assert "no call waits" in cluster.trace.filter("reply_dropped")[0].detail


# -- Corrupt ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "why"),
    [
        ("body", "request body cannot be decoded as json"),
        ("properties", "the message cannot be decoded: its content_type is not UTF-8"),
    ],
)
def test_a_corrupted_request_is_answered_and_dropped_and_the_replica_serves_on(part, why):
    """A request that cannot be decoded is answered with MalformedRequest and
    rejected (never requeued, never run); the replica goes on serving."""
    with SimCluster(faults=[Corrupt(part=part, service="calculator")]) as cluster:
        cluster.add_service(CalculatorService)
        with pytest.raises(MalformedRequest, match=why):
            cluster.rpc.calculator.add(1, 2)
        assert cluster.rpc.calculator.add(1, 2) == 3
        (fault,) = cluster.trace.filter("fault_corrupt")
        assert fault.detail.startswith("request calculator.add corrupted")
        assert [e.kind for e in cluster.trace.filter(correlation_id=fault.correlation_id)] == [
            "publish",
            "fault_corrupt",
            "deliver",
            "bad_request",
            "reply",
            "reject",
            "deliver",
        ]
        assert len(cluster.trace.filter("worker_start")) == 1
        assert cluster.bus.queue_stats()[0][1] == 0  # nothing left in rpc-calculator


@pytest.mark.parametrize("part", ["body", "properties"])
def test_a_corrupted_reply_fails_its_call_with_malformed_reply(part):
    """A reply that cannot be decoded ends its call with MalformedReply (the call
    ran: the caller cannot know its outcome)."""
    with SimCluster(faults=[Corrupt(part=part, direction="reply")]) as cluster:
        cluster.add_service(CalculatorService)
        with pytest.raises(MalformedReply, match="cannot be decoded"):
            cluster.rpc.calculator.add(1, 2)
        assert cluster.rpc.calculator.add(1, 2) == 3


def test_corrupt_validates_its_part():
    """Corrupt names the part it damages: body or properties."""
    with pytest.raises(ConfigurationError, match="part must be one of"):
        Corrupt(part="headers")


# -- crashes ------------------------------------------------------------------------------


def test_crash_mid_call_redelivers_to_another_replica():
    """A replica killed mid-call: its request is requeued and answered by another."""
    with SimCluster(faults=[Crash("calculator-1", at=1.0)]) as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        assert cluster.rpc.calculator.slow(3, "done") == "done"
        assert requests_delivered(cluster, "slow") == [
            ("calculator-1", ""),
            ("calculator-2", "redelivered"),
        ]
        assert cluster.trace.filter("fault_crash")[0].detail.startswith("fault plan: Crash(")
        assert cluster.trace.filter("requeue")
        assert cluster.elapsed() == pytest.approx(4.002)  # 1.001 + 3 s + reply
        assert not cluster.replica("calculator-1").alive


def test_crash_during_a_given_call():
    """CrashDuring kills the replica running the nth call, before it replies."""
    plan = [CrashDuring(service="calculator", method="add", nth=2)]
    with SimCluster(faults=plan) as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        assert [cluster.rpc.calculator.add(i, i) for i in range(4)] == [0, 2, 4, 6]
        assert requests_delivered(cluster, "add")[:3] == [
            ("calculator-1", ""),
            ("calculator-2", ""),
            ("calculator-1", "redelivered"),
        ]
        assert not cluster.replica("calculator-2").alive
        assert cluster.trace.filter("fault_crash", replica="calculator-2")


def test_kill_and_restart():
    """cluster.kill and cluster.restart; restart_after brings a replica back by itself."""
    with SimCluster(faults=[Crash("calculator-2", at=1, restart_after=2)]) as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        cluster.kill("calculator-1")
        cluster.advance(1.5)
        assert not any(r.alive for r in cluster.replicas("calculator"))
        cluster.advance(2)
        assert cluster.replica("calculator-2").alive
        cluster.restart("calculator-1")
        for _ in range(4):
            cluster.rpc.calculator.add(1, 1)
        assert {r for r, _ in requests_delivered(cluster, "add")} == {
            "calculator-1",
            "calculator-2",
        }
        with pytest.raises(RuntimeError, match="already running"):
            cluster.restart("calculator-1")
        assert len(cluster.trace.filter("fault_restart")) == 2


def test_a_crash_is_not_a_replica_crash_error():
    """Faults kill replicas on purpose: stop() does not raise ReplicaCrashed for them."""
    with SimCluster(faults=[Crash("calculator-1")]) as cluster:
        cluster.add_service(CalculatorService)
        cluster.advance(1)
    assert cluster.crashes == []


# -- partitions ---------------------------------------------------------------------------


def test_partitioned_replica_loses_its_unacked_and_comes_back():
    """A cut replica's unacked request goes to another; after healing it takes calls again."""
    with SimCluster(faults=[Partition("calculator-1", at=0.5, duration=5)]) as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        assert cluster.rpc.calculator.slow(1, "x") == "x"
        # calculator-1 ran it too, but could not reply while cut off
        assert requests_delivered(cluster, "slow") == [
            ("calculator-1", ""),
            ("calculator-2", "redelivered"),
        ]
        assert cluster.trace.filter("publish_refused", replica="calculator-1")
        assert cluster.trace.filter("retry", replica="calculator-1")
        cluster.advance(10)
        assert cluster.trace.filter("fault_heal", replica="calculator-1")
        for _ in range(2):
            cluster.rpc.calculator.add(1, 1)
        assert {r for r, _ in requests_delivered(cluster, "add")} == {
            "calculator-1",
            "calculator-2",
        }


def test_partitioned_client_gets_replies_after_healing():
    """A client cut off gets, on reconnecting, the replies that waited in its queue."""
    with SimCluster() as cluster:
        cluster.add_service(CalculatorService)
        client = cluster.rpc_proxy(timeout=30)
        reply = client.calculator.slow.call_async(2, "w")
        cluster.partition(client.label)
        cluster.advance(5)
        assert cluster.trace.filter("deliver", method="slow")[-1].replica == "calculator-1"
        cluster.heal(client.label)
        assert reply.result() == "w"
        assert cluster.elapsed() == pytest.approx(5.001)  # delivered on reconnecting


def test_reply_queue_expires_while_client_is_away():
    """A client away longer than RPC_REPLY_QUEUE_TTL loses the replies sent to it
    meanwhile; back, it declares its queue again and sends its waiting call again."""
    with SimCluster(config={"RPC_REPLY_QUEUE_TTL": 2}) as cluster:
        cluster.add_service(CalculatorService)
        client = cluster.rpc_proxy(timeout=10)
        label = client.label
        reply = client.calculator.slow.call_async(2.5, "late")
        cluster.partition(label)
        cluster.advance(3)  # the reply queue expires at t+2
        cluster.heal(label)
        assert reply.result() == "late"
        assert cluster.elapsed() == pytest.approx(5.502)  # sent again at 3, 2.5 s of work
        (resend,) = cluster.trace.filter("resend")
        assert "its reply queue was lost" in resend.detail
        assert cluster.trace.filter("queue_deleted")[0].detail.startswith("rpc.reply-")
        assert "expired after 2s unused" in cluster.trace.filter("queue_deleted")[0].detail
        drops = cluster.trace.filter("drop")
        assert drops and "no queue bound" in drops[0].detail
        assert client.calculator.add(1, 1) == 2  # a fresh queue after reconnecting


# -- broker outage and publish retries ----------------------------------------------------


def test_outage_shorter_than_the_retries_is_ridden_out():
    """Publishes fail during an outage and are retried in virtual time, then succeed."""
    with SimCluster(faults=[BrokerOutage(at=1, duration=0.25)]) as cluster:
        cluster.add_service(CalculatorService)
        cluster.advance(1)
        assert cluster.rpc.calculator.add(1, 2) == 3
        retries = cluster.trace.filter("retry")
        assert [r.time for r in retries] == [1.0, 1.1]  # waits of 0.1 and 0.3
        assert "attempt 1 failed" in retries[0].detail
        assert cluster.trace.filter("fault_outage_end")[0].time == 1.25
        assert cluster.trace.filter("deliver")[0].time == 1.401


def test_outage_longer_than_the_retries_fails_cleanly():
    """When retries run out the caller gets PublishFailed and nothing was sent."""
    with SimCluster(faults=[BrokerOutage(duration=60)]) as cluster:
        cluster.add_service(CalculatorService)
        cluster.advance(0)  # what falls due at t=0 happens: the broker goes down
        with pytest.raises(PublishFailed) as caught:
            cluster.rpc.calculator.add(1, 2)
        assert caught.value.attempts == 21  # the default RPC_RETRY_POLICY: 20 retries
        assert "Nothing was sent" in str(caught.value)
        assert cluster.elapsed() == pytest.approx(0.1 + 0.3 + 0.5 + 0.7 + 0.9 + 15 * 1.0)
        assert not cluster.trace.filter("deliver")
        assert cluster.trace.filter("publish_failed")


def test_a_calls_timeout_cuts_its_publish_retries_short():
    """A call with a timeout gives up retrying its publish when the next attempt
    would come too late: it ends within its timeout, retries included."""
    with SimCluster(faults=[BrokerOutage(duration=60)]) as cluster:
        cluster.add_service(CalculatorService)
        cluster.advance(0)
        with pytest.raises(PublishFailed) as caught:
            cluster.rpc_proxy(timeout=2).calculator.add(1, 2)
        # waits of 0.1, 0.3, 0.5 and 0.7; the next (0.9) would end after 2 s
        assert caught.value.attempts == 5
        assert cluster.elapsed() == pytest.approx(1.6)


def test_a_call_that_publishes_late_still_times_out_on_time():
    """The timeout counts from the call, not from the publish that finally worked."""
    with SimCluster(faults=[BrokerOutage(duration=1.2), Drop(service="calculator")]) as cluster:
        cluster.add_service(CalculatorService)
        cluster.advance(0)
        with pytest.raises(RpcTimeout):
            cluster.rpc_proxy(timeout=3).calculator.add(1, 2)
        assert cluster.elapsed() == pytest.approx(3.0)


class Persistent:
    name = "persistent"
    patient = RpcProxy(
        "calculator",
        retry_policy={
            "max_retries": 10,
            "interval_start": 1,
            "interval_step": 0,
            "interval_max": 1,
        },
    )
    hasty = RpcProxy("calculator", retry_policy={"max_retries": 0})

    @rpc
    def both(self):
        time.sleep(1)
        outcome = {}
        for name in ("hasty", "patient"):
            try:
                outcome[name] = getattr(self, name).add(1, 1)
            except PublishFailed as exc:
                outcome[name] = f"failed after {exc.attempts}"
        return outcome


def test_retry_policy_per_proxy_and_config():
    """RpcProxy(retry_policy=...) overrides RPC_RETRY_POLICY."""
    config = {"RPC_RETRY_POLICY": {"max_retries": 50, "interval_start": 0.5, "interval_step": 0}}
    with SimCluster(config=config) as cluster:
        cluster.add_service(CalculatorService)
        cluster.add_service(Persistent)
        reply = cluster.rpc.persistent.both.call_async()
        cluster.advance(0.5)
        cluster.broker_outage(3)
        assert reply.result() == {"hasty": "failed after 1", "patient": 2}
        patient = [e for e in cluster.trace.filter("retry") if e.replica == "persistent-1"]
        assert [e.time for e in patient] == [1.001, 2.001, 3.001]


# -- plans --------------------------------------------------------------------------------


def test_plan_prints_as_python_that_rebuilds_it():
    """repr(plan) is Python; from_python reads it back equal."""
    plan = FaultPlan(
        [
            Drop(direction="reply", service="a", count=2),
            Delay(seconds=0.5, jitter=0.25, method="m"),
            Duplicate(probability=0.5),
            Crash("a-1", at=1.5, restart_after=2.0),
            CrashDuring(service="b", nth=3),
            Partition("client", at=0.1, duration=4.0),
            BrokerOutage(at=2.0, duration=0.5),
        ]
    )
    text = repr(plan)
    assert text.startswith("FaultPlan([Drop(direction='reply', service='a', count=2), ")
    assert FaultPlan.from_python(text) == plan
    assert FaultPlan.from_python("[Drop()]") == FaultPlan([Drop()])
    assert FaultPlan.from_python("Crash('x-1')") == FaultPlan([Crash("x-1")])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('true')", "may only call"),
        ("Drop(service=os)", "unknown name 'os'"),
        ("Drop(", "not valid Python"),
        ("Drop(count=1 + 1)", "only fault constructors and literals"),
        ("[1, 2]", "a fault plan holds faults"),
        ("Drop(direction='sideways')", "direction must be one of"),
    ],
)
def test_from_python_refuses_anything_else(text, message):
    """Only fault constructors and literals are accepted, with a clear error."""
    with pytest.raises(ConfigurationError, match=message):
        FaultPlan.from_python(text)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Drop(count=0), "count must be a whole number >= 1 or None"),
        (lambda: Drop(skip=-1), "skip must be"),
        (lambda: Drop(probability=2), "probability must be between 0 and 1"),
        (lambda: Delay(seconds=-1), "seconds and jitter must be numbers >= 0"),
        (lambda: Crash("a-1", at=-1), "at must be seconds >= 0"),
        (lambda: CrashDuring("a", nth=0), "nth must be"),
        (lambda: Drop(predicate=lambda *a: True), "a lambda cannot be written back"),
        (lambda: Drop(predicate="nowhere:nothing"), None),
    ],
)
def test_faults_validate_their_fields(build, message):
    """Bad fault fields are ConfigurationErrors saying what is allowed."""
    if message is None:
        fault = build()
        with SimCluster() as cluster, pytest.raises(ConfigurationError, match="cannot be imported"):
            cluster.add_faults(fault)
        return
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_crash_of_an_unknown_replica_is_loud():
    """A plan naming a replica that does not exist fails the run, naming the replicas."""
    with SimCluster(faults=[Crash("calculator-9", at=1)]) as cluster:
        cluster.add_service(CalculatorService)
        with pytest.raises(FaultPlanError, match=r"replica 'calculator-9', which the cluster"):
            cluster.advance(2)


def test_faults_added_to_a_running_cluster():
    """add_faults arms faults from now on; fault_plan lists them all."""
    first = Drop(service="calculator", method="divide")
    with SimCluster(faults=[first]) as cluster:
        cluster.add_service(CalculatorService)
        assert cluster.rpc.calculator.add(1, 1) == 2
        cluster.add_faults(Drop(service="calculator"))
        with pytest.raises(RpcTimeout):
            cluster.rpc_proxy(timeout=1).calculator.add(1, 1)
        assert cluster.fault_plan == FaultPlan([first, Drop(service="calculator")])


def test_stopping_during_an_outage_or_a_partition_is_clean():
    """A cluster stops cleanly while the broker is down or a replica is cut off."""
    with SimCluster() as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        cluster.rpc.calculator.add(1, 1)
        cluster.partition("calculator-1")
        cluster.broker_outage(5)
    assert cluster.state == "stopped"
    assert [r.container.state for r in cluster.replicas()] == ["stopped", "stopped"]


def test_a_quorum_queue_drops_a_request_given_back_more_than_its_delivery_limit():
    """With RPC_QUEUE_TYPE quorum, a request that every replica dies on is given back
    at most RPC_DELIVERY_LIMIT times, then dropped: it never loops for ever."""
    config = {"RPC_QUEUE_TYPE": "quorum", "RPC_DELIVERY_LIMIT": 2}
    crashes = [CrashDuring(service="calculator", method="add", nth=n) for n in (1, 2, 3)]
    with SimCluster(config=config, faults=crashes) as cluster:
        cluster.add_service(CalculatorService, replicas=3)
        with pytest.raises(RpcTimeout):
            cluster.rpc_proxy(timeout=5).calculator.add(1, 2)
        assert len(cluster.trace.filter("fault_crash")) == 3
        (drop,) = cluster.trace.filter("drop")
        assert drop.detail == "rpc-calculator: given back 3 times, over its delivery limit"
        assert cluster.bus.queue_stats()[0][1] == 0


class Slowpoke:
    name = "slowpoke"

    @rpc
    def nap(self, seconds):
        time.sleep(seconds)
        return seconds


def test_a_broker_restart_loses_reply_queues_and_waiting_calls_are_sent_again():
    """A restart drops every connection and the non-durable reply queues: once the
    broker is back, the client declares its reply queue again and publishes its
    waiting call again; the call is answered. It ran three times (at least once):
    cut off mid-call, redelivered from its durable queue, and sent again."""
    plan = [BrokerOutage(at=0.5, duration=2.0, restart=True)]
    with SimCluster(faults=plan) as cluster:
        cluster.add_service(Slowpoke)
        client = cluster.rpc_proxy(timeout=30)
        assert client.slowpoke.nap(1) == 1
        (lost,) = cluster.trace.filter("queue_deleted")
        assert lost.detail.startswith("rpc.reply-standalone_rpc_proxy-")
        assert lost.detail.endswith(" lost in the broker restart")
        (resend,) = cluster.trace.filter("resend")
        assert resend.time == 2.5
        assert "its reply queue was lost" in resend.detail
        assert len(cluster.trace.filter("worker_start")) == 3
        assert client.slowpoke.nap(0) == 0


def test_a_broker_restart_keeps_persistent_requests_in_durable_queues():
    """A request waiting in its (durable) service queue outlives a restart and is
    answered once a replica consumes again."""
    with SimCluster() as cluster:
        cluster.add_service(CalculatorService)
        cluster.kill("calculator-1")
        client = cluster.rpc_proxy(timeout=20)
        reply = client.calculator.add.call_async(1, 2)
        cluster.broker_outage(1.0, restart=True)
        cluster.advance(2)
        cluster.restart("calculator-1")
        assert reply.result() == 3
        assert not cluster.trace.filter("drop")


def test_a_planned_heal_falling_due_while_the_cluster_stops_is_skipped():
    """A partition's heal timer that comes due while stop() lets workers finish
    does not fail the stop (it used to raise 'the SimCluster is stopping')."""

    class Sleepy:
        name = "sleepy"

        @rpc
        def nap(self):
            time.sleep(10)  # virtual: stop() runs the loop through the heal's time
            return "rested"

    plan = FaultPlan([Partition(replica="client", at=0.05, duration=1.0)])
    with SimCluster(faults=plan) as cluster:
        cluster.add_service(Sleepy)
        cluster.rpc_proxy(timeout=None).sleepy.nap.call_async()
        cluster.advance(0.1)
    kinds = [event.kind for event in cluster.trace.events]
    assert "fault_partition" in kinds
    assert "fault_heal" not in kinds  # skipped: the cluster was stopping
