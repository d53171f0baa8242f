"""Events and timers: an order placed once, heard by every service that cares.

``order_service`` dispatches ``order_placed``; ``email_service`` (two
replicas, SERVICE_POOL) sends one confirmation per order, whichever replica
takes it; ``audit_log`` (two replicas, BROADCAST) records every order on
each replica; ``stock_reconciler`` checks stock every minute with a timer.
The user who placed the order travels with the event as context data.

    shimeji sim examples/notifications.py
"""

import time

from shimeji.contextdata import ContextDataProvider
from shimeji.events import BROADCAST, EventDispatcher, event_handler
from shimeji.extensions import DependencyProvider
from shimeji.rpc import rpc
from shimeji.timer import timer

# What the handlers did, for the scenario to report (one simulation at a time).
OUTBOX = []
CONFIRMED = set()  # orders confirmed: where a real service would ask its database
AUDIT = []
RECONCILED = []


class ReplicaName(DependencyProvider):
    """Which replica runs the worker."""

    def get_dependency(self, worker_ctx):
        return worker_ctx.container.replica_name


class OrderService:
    name = "order_service"

    dispatch = EventDispatcher()

    @rpc
    def place_order(self, order):
        self.dispatch("order_placed", order)
        return {"order_id": order["order_id"], "status": "placed"}


class EmailService:
    name = "email_service"

    context = ContextDataProvider()
    replica = ReplicaName()

    @event_handler("order_service", "order_placed")
    def send_confirmation(self, order):
        # Idempotent: an event can arrive twice (at-least-once delivery).
        if order["order_id"] in CONFIRMED:
            return
        CONFIRMED.add(order["order_id"])
        OUTBOX.append(
            {
                "to": order["email"],
                "order_id": order["order_id"],
                "placed_by": self.context.get("user_id"),
                "sent_by": self.replica,
            }
        )


class AuditLog:
    name = "audit_log"

    replica = ReplicaName()

    @event_handler("order_service", "order_placed", handler_type=BROADCAST, reliable_delivery=False)
    def record(self, order):
        AUDIT.append((self.replica, order["order_id"]))


class StockReconciler:
    name = "stock_reconciler"

    @timer(interval=60)
    def reconcile(self):
        RECONCILED.append(time.time())  # virtual time on the simulator


def scenario(cluster):
    """Three orders dispatched as events, five minutes of a one-minute timer."""
    for store in (OUTBOX, CONFIRMED, AUDIT, RECONCILED):
        store.clear()
    cluster.add_service(OrderService)
    cluster.add_service(EmailService, replicas=2)
    cluster.add_service(AuditLog, replicas=2)
    cluster.add_service(StockReconciler)
    client = cluster.rpc_proxy(context_data={"user_id": "u-42"})
    for order_id in (1, 2, 3):
        order = {"order_id": order_id, "email": f"c{order_id}@example.com"}
        client.order_service.place_order(order)
    cluster.advance(300)
    return {
        "emails": sorted(OUTBOX, key=lambda sent: sent["order_id"]),
        "audit entries per replica": {
            replica: sum(1 for name, _ in AUDIT if name == replica)
            for replica in ("audit_log-1", "audit_log-2")
        },
        "reconciliations in 5 minutes": len(RECONCILED),
    }
