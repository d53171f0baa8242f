"""The specification's examples run unchanged on the simulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from examples import (
    audit,
    calculator,
    gateway,
    notifications,
    order_errors,
    orders,
    run_all,
    user_score,
)
from shimeji.config import load_config
from shimeji.sim import SimCluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster():
    with SimCluster(config=load_config(ROOT / "examples" / "config.yaml")) as cluster:
        yield cluster


def test_calculator(cluster):
    """add, multiply, and divide with its expected ValueError."""
    results = calculator.scenario(cluster)
    assert results == {
        "add(2, 3)": 5,
        "multiply(6, 7)": 42,
        "divide(10, 4)": 2.5,
        "divide(1, 0)": "RemoteError: ValueError Division by zero",
    }


def test_user_score(cluster):
    """A service calling the calculator through RpcProxy."""
    assert user_score.scenario(cluster) == {"user_id": "u1", "score": 30}


def test_orders_parallel(cluster):
    """Parallel call_async to payment, inventory and email."""
    assert orders.scenario(cluster) == {
        "status": "success",
        "payment": {"charged": 42.5, "currency": "EUR"},
        "inventory": {"reserved": ["apple", "pear"]},
        "email_sent": True,
    }
    starts = [
        e
        for e in cluster.trace.filter("deliver")
        if not e.is_reply and e.service in ("payment_service", "inventory_service", "email_service")
    ]
    assert len({e.time for e in starts}) == 1  # the three calls were in flight together


def test_orders_failure_and_summary(cluster):
    """A declined card fails the parallel order; the summary gathers three services."""
    orders.scenario(cluster)
    declined = dict(orders.ORDER, payment_info={"amount": 1, "card": "declined"})
    assert cluster.rpc.order_service.process_order_parallel(declined) == {
        "status": "failed",
        "error": "ValueError card declined",
    }
    assert cluster.rpc.order_service.get_order_summary_async(7) == {
        "order": {"order_id": 7, "total": 42.5},
        "customer": {"customer_id": "c-7", "name": "Ada"},
        "shipping": {"carrier": "post", "tracking": "T7"},
    }


def test_order_errors(cluster):
    """RemoteError and ServiceNotFound handled inside a service."""
    assert order_errors.scenario(cluster) == {
        "no payment service": {"status": "service_unavailable"},
        "paid": {"status": "success", "payment": {"charged": 10, "currency": "EUR"}},
        "declined": {"status": "payment_failed", "error": "ValueError card declined"},
    }


def test_audit_reads_context(cluster):
    """Context data reaches the audit service; time is virtual."""
    result = audit.scenario(cluster)
    assert result == {
        "action": "login",
        "user_id": "u-42",
        "correlation_id": "req-7",
        "timestamp": 1704067200.001,
    }


def test_run_all_script():
    """python -m examples.run_all runs every example and prints results and traces."""
    done = subprocess.run(
        [sys.executable, "-m", "examples.run_all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    for name in run_all.EXAMPLES:
        assert f"=== {name}:" in done.stdout
    assert "worker_start" in done.stdout


def test_notifications_events_and_timer(cluster):
    """One email per order from the pool, every order on each audit replica,
    the user in the event's context, five ticks of a one-minute timer."""
    result = notifications.scenario(cluster)
    assert [(sent["order_id"], sent["placed_by"]) for sent in result["emails"]] == [
        (1, "u-42"),
        (2, "u-42"),
        (3, "u-42"),
    ]
    assert {sent["sent_by"] for sent in result["emails"]} == {"email_service-1", "email_service-2"}
    assert result["audit entries per replica"] == {"audit_log-1": 3, "audit_log-2": 3}
    assert result["reconciliations in 5 minutes"] == 5


def test_notifications_under_the_tutorials_faults():
    """docs/tutorial.md, chapter 6: a subscriber that was down misses the event; a
    duplicated event is sent once by the idempotent handler; a dropped event is
    lost for every handler; an email replica killed mid-event leaves it to the
    other, which sends it once."""
    from shimeji.sim.faults import Crash, CrashDuring, Drop, Duplicate

    down = Crash(replica="audit_log-1", at=0.0, restart_after=0.003)
    with SimCluster(seed=0, faults=[down]) as cluster:
        result = notifications.scenario(cluster)
    assert result["audit entries per replica"] == {"audit_log-1": 2, "audit_log-2": 3}
    with SimCluster(seed=0, faults=[Duplicate(direction="event", service="order_service")]) as c:
        result = notifications.scenario(c)
    handled = [e for e in c.trace.filter("worker_start") if e.method == "send_confirmation"]
    assert len(handled) == 4
    assert [sent["order_id"] for sent in result["emails"]] == [1, 2, 3]
    assert result["audit entries per replica"] == {"audit_log-1": 4, "audit_log-2": 4}

    with SimCluster(seed=0, faults=[Drop(direction="event", service="order_service")]) as cluster:
        result = notifications.scenario(cluster)
    assert [sent["order_id"] for sent in result["emails"]] == [2, 3]
    assert result["audit entries per replica"] == {"audit_log-1": 2, "audit_log-2": 2}
    crash = CrashDuring(service="email_service", method="send_confirmation")
    with SimCluster(seed=0, faults=[crash]) as cluster:
        result = notifications.scenario(cluster)
    assert [(sent["order_id"], sent["sent_by"]) for sent in result["emails"]] == [
        (1, "email_service-2"),
        (2, "email_service-2"),
        (3, "email_service-2"),
    ]
    redelivered = [
        e for e in cluster.trace.filter("deliver") if e.detail and "redelivered" in e.detail
    ]
    assert [e.replica for e in redelivered] == ["email_service-2"]


def test_gateway_places_and_reads_an_order(cluster):
    """POST /orders places the order (201) and GET /orders/<id> gathers its summary
    from three services; the request's nameko.user_id header reaches each of them."""
    assert gateway.scenario(cluster) == {
        "POST /orders": (
            201,
            {
                "status": "success",
                "payment": {"charged": 42.5, "currency": "EUR"},
                "inventory": {"reserved": ["apple", "pear"]},
                "email_sent": True,
            },
        ),
        "GET /orders/1001": (
            200,
            {
                "order": {"order_id": 1001, "total": 42.5},
                "customer": {"customer_id": "c-1001", "name": "Ada"},
                "shipping": {"carrier": "post", "tracking": "T1001"},
            },
        ),
    }
    reached = {
        event.service
        for event in cluster.trace.filter("deliver")
        if not event.is_reply and event.message.headers.get("nameko.user_id") == "42"
    }
    assert reached == {
        "gateway",
        "order_service",
        "payment_service",
        "inventory_service",
        "email_service",
        "order_db",
        "customer_service",
        "shipping_service",
    }


def test_gateway_answers_bad_orders_with_400(cluster):
    """A body that is not JSON, or an order missing fields: 400 naming the problem,
    and no RPC call made."""
    gateway.scenario(cluster)
    before = len(cluster.trace.filter("publish"))
    answer = cluster.http.post("/orders", data="{not json")
    assert (answer.status_code, answer.text) == (
        400,
        "Error: BadRequest: the body must be a JSON order\n",
    )
    answer = cluster.http.post("/orders", json={"order_id": 2})
    assert answer.status_code == 400
    assert "the order lacks payment_info, items, customer_email" in answer.text
    assert len(cluster.trace.filter("publish")) == before + 2  # the two requests only
