"""A fault plan names services, methods, replicas and clients: a name the cluster
does not have is an error (the plan could never fire), with a did-you-mean."""

from __future__ import annotations

import pytest

from shimeji.exceptions import ConfigurationError, FaultPlanError
from shimeji.sim import SimCluster
from shimeji.sim.faults import (
    Crash,
    CrashDuring,
    Delay,
    Drop,
    FaultPlan,
    Partition,
    PlanGraph,
    check_plan,
    plan_problems,
)

from .services import CalculatorService

GRAPH = PlanGraph(
    {"payment_service": ("process_payment",), "calculator": ("add", "divide", "multiply")},
    ("payment_service-1", "calculator-1", "calculator-2"),
    ("client",),
)


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (
            Drop(service="paymnt_service"),
            "Drop(service='paymnt_service') names service 'paymnt_service', which the cluster "
            "does not run (did you mean 'payment_service'?); it runs: payment_service, calculator",
        ),
        (
            CrashDuring(service="calculator", method="mul"),
            "CrashDuring(service='calculator', method='mul') names method 'mul', which "
            "calculator does not have (did you mean 'multiply'?); its methods: add, divide, "
            "multiply",
        ),
        (
            Delay(method="multipy"),
            "Delay(method='multipy') names method 'multipy', which no service has (did you mean "
            "'multiply'?); the methods are: add, divide, multiply, process_payment",
        ),
        (
            Drop(service="payment_service", method="multiply"),
            "names method 'multiply', which payment_service does not have; its methods: "
            "process_payment",
        ),
        (
            Crash("calculator-3"),
            "Crash(replica='calculator-3') names replica 'calculator-3', which the cluster does "
            "not have (did you mean 'calculator-2'?); it has: payment_service-1, calculator-1, "
            "calculator-2",
        ),
        (
            Crash("client"),
            "Crash(replica='client') names 'client', a client: a Crash kills replicas; cut a "
            "client off the broker with Partition instead",
        ),
        (
            Partition("clent"),
            "Partition(replica='clent') names replica or client 'clent', which the cluster does "
            "not have (did you mean 'client'?); it has: payment_service-1, calculator-1, "
            "calculator-2, client",
        ),
    ],
)
def test_each_unknown_name_is_one_sentence_with_a_suggestion(fault, problem):
    """The sentence names the fault as Python, the wrong name, the closest right one
    and every name it could have been."""
    (found,) = plan_problems(FaultPlan([fault]), GRAPH)
    assert problem in found
    assert found.startswith(repr(fault))


def test_names_the_graph_has_pass():
    """Every kind of name, spelt right: no problem."""
    plan = FaultPlan(
        [
            Drop(service="payment_service"),
            Drop(method="divide"),
            CrashDuring(service="calculator", method="multiply"),
            Crash("calculator-2"),
            Partition("client"),
            Partition("payment_service-1"),
        ]
    )
    assert plan_problems(plan, GRAPH) == []
    check_plan(plan, GRAPH)


def test_with_replicas_and_clients_unknown_only_their_form_is_checked():
    """Before a scenario runs (the command line), replica counts and clients are not
    known: <service>-<n> of a known service and client-<n> pass; the rest does not."""
    graph = PlanGraph({"calculator": ("add",)})
    assert plan_problems([Crash("calculator-7"), Partition("client-3")], graph) == []
    (problem,) = plan_problems([Crash("calculater-2")], graph)
    assert "is not a replica of a service the cluster runs (did you mean 'calculator-2'?)" in (
        problem
    )


def test_several_problems_are_all_reported():
    """One error lists every name that is wrong, numbered."""
    with pytest.raises(FaultPlanError) as caught:
        check_plan([Drop(service="x"), Crash("y-1")], GRAPH)
    assert len(caught.value.problems) == 2
    assert str(caught.value).startswith("the fault plan can never fire as written: (1) Drop(")
    assert "; (2) Crash(replica='y-1')" in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_a_plan_given_at_creation_is_checked_at_the_first_call():
    """SimCluster(faults=...) before the services exist: the first call checks the plan
    against the services added by then, and nothing of the plan fires."""
    with SimCluster(faults=[Drop(service="calculater"), Crash("calculator-1", at=0.5)]) as cluster:
        cluster.add_service(CalculatorService)
        with pytest.raises(FaultPlanError, match=r"\(did you mean 'calculator'\?\)"):
            cluster.rpc.calculator.add(1, 2)
        # Disarmed, all of it: the right names in the same plan do not fire either.
        assert cluster.rpc.calculator.add(1, 2) == 3
        cluster.advance(1)
    assert cluster.trace.filter("fault_crash") == []
    assert cluster.fault_plan == FaultPlan([Drop(service="calculater"), Crash("calculator-1", 0.5)])


def test_a_plan_given_before_start_with_the_services_is_fine():
    """The README's order: faults given first, services added after start."""
    with SimCluster(faults=[Drop(service="calculator", method="add")]) as cluster:
        cluster.add_service(CalculatorService, replicas=2)
        cluster.rpc_proxy(timeout=1).calculator.multiply(2, 3)
        with pytest.raises(Exception, match="got no reply"):
            cluster.rpc_proxy(timeout=1).calculator.add(2, 3)
    assert len(cluster.trace.filter("fault_drop")) == 1


def test_add_faults_after_the_first_call_is_checked_at_once():
    """Once the simulation has run, a plan is checked before it is armed."""
    with SimCluster() as cluster:
        cluster.add_service(CalculatorService)
        cluster.rpc.calculator.add(1, 1)
        with pytest.raises(FaultPlanError, match="names replica 'calculator-2'"):
            cluster.add_faults(Crash("calculator-2", at=1))
        assert cluster.fault_plan == FaultPlan()
        cluster.advance(2)
        assert cluster.trace.filter("fault_crash") == []
        # A second client exists once it is made: then it can be cut off.
        with pytest.raises(FaultPlanError, match="did you mean 'client'"):
            cluster.add_faults(Partition("client-2", at=3))
        second = cluster.rpc_proxy()
        assert second.label == "client-2"
        cluster.add_faults(Partition("client-2", at=3))


def test_a_plan_never_checked_because_nothing_ran_fails_the_stop():
    """A cluster that made no call still refuses a plan that could never have fired."""
    cluster = SimCluster(faults=[CrashDuring(service="calculator", method="power")])
    cluster.start()
    cluster.add_service(CalculatorService)
    with pytest.raises(FaultPlanError, match="names method 'power', which calculator does not"):
        cluster.stop()
    assert cluster.state == "stopped"


def test_a_failing_test_is_not_hidden_by_the_plan_check():
    """Leaving a `with` block on an exception stops without checking the plan: the
    test's own error is the one reported."""
    with pytest.raises(KeyError), SimCluster(faults=[Drop(service="nobody")]) as cluster:
        cluster.add_service(CalculatorService)
        raise KeyError("the test's own error")


EVENT_GRAPH = PlanGraph(
    {"order_service": ("place_order",), "email_service": ("send_confirmation",)},
    events={"order_service": ("order_placed", "order_cancelled")},
)


@pytest.mark.parametrize(
    "fault",
    [
        Drop(direction="event", service="order_service"),
        Drop(direction="event", service="order_service", method="order_placed"),
        Drop(direction="event", method="order_cancelled"),
        Delay(direction="any", service="order_service", method="order_placed"),
        Delay(direction="any", service="email_service", method="send_confirmation"),
    ],
)
def test_event_faults_name_sources_and_event_types(fault):
    """An event fault names the service that dispatches (it need not run in the
    cluster) and an event type some handler listens to."""
    assert plan_problems([fault], EVENT_GRAPH) == []


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (
            Drop(direction="event", service="order_servce"),
            "names events from 'order_servce', which no handler in the cluster listens to "
            "(did you mean 'order_service'?)",
        ),
        (
            Drop(direction="event", service="order_service", method="order_plced"),
            "names event type 'order_plced', which no handler of order_service's events "
            "listens to (did you mean 'order_placed'?)",
        ),
        (
            Drop(direction="request", service="order_service", method="order_placed"),
            "names method 'order_placed', which order_service does not have",
        ),
    ],
)
def test_event_faults_with_names_no_handler_has_are_refused(fault, words):
    (problem,) = plan_problems([fault], EVENT_GRAPH)
    assert words in problem


def test_a_cluster_knows_the_events_its_handlers_listen_to():
    """SimCluster's graph lists the sources and event types of its handlers: a plan
    naming a misspelt event type fails at the first run."""
    from examples.notifications import EmailService

    plan = [Drop(direction="event", service="order_service", method="order_paced")]
    with SimCluster(seed=0, faults=plan) as cluster:
        cluster.add_service(EmailService)
        assert cluster.fault_graph().events == {"order_service": ("order_placed",)}
        with pytest.raises(FaultPlanError, match="did you mean 'order_placed'"):
            cluster.advance(1)
