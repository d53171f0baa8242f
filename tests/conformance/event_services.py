"""Services the event and timer conformance tests run, on either transport.

Handlers write what they saw to ``SEEN`` (services run in the test's process
on both transports); the ``seen`` fixture empties it around each test.
"""

from __future__ import annotations

import threading
from typing import Any

from shimeji.contextdata import ContextDataProvider
from shimeji.events import BROADCAST, SINGLETON, EventDispatcher, event_handler
from shimeji.rpc import RpcProxy, rpc
from shimeji.timer import timer
from tests.conformance.services import CallIds, ReplicaName

SEEN: list[tuple[Any, ...]] = []
_lock = threading.Lock()


def saw(*record: Any) -> None:
    with _lock:
        SEEN.append(record)


def seen(kind: str) -> list[tuple[Any, ...]]:
    with _lock:
        return [record[1:] for record in SEEN if record[0] == kind]


class Orders:
    """Dispatches ``order_placed`` from an RPC method."""

    name = "orders"
    dispatch = EventDispatcher()
    call_ids = CallIds()

    @rpc
    def place(self, order_id: Any) -> list[str]:
        self.dispatch("order_placed", {"id": order_id})
        return self.call_ids

    @rpc
    def place_unserializable(self) -> None:
        self.dispatch("order_placed", {"when": object()})


class Email:
    """A SERVICE_POOL handler: each event once, whichever replica."""

    name = "email"
    replica = ReplicaName()
    context = ContextDataProvider()
    call_ids = CallIds()

    @event_handler("orders", "order_placed")
    def send(self, payload: Any) -> None:
        saw("email", payload["id"], self.replica, self.context.get("user_id"), self.call_ids)


class Whoami:
    """Answers with the context data and call id stack it was called with."""

    name = "whoami"
    context = ContextDataProvider()
    call_ids = CallIds()

    @rpc
    def tell(self):
        return {"user_id": self.context.get("user_id"), "stack": self.call_ids}


class Asker:
    """Handles the event by calling another service."""

    name = "asker"
    whoami = RpcProxy("whoami")

    @event_handler("orders", "order_placed")
    def ask(self, payload):
        saw("asker", payload["id"], self.whoami.tell())


class Billing:
    """A second SERVICE_POOL subscriber: it gets every event too."""

    name = "billing"

    @event_handler("orders", "order_placed")
    def charge(self, payload: Any) -> None:
        saw("billing", payload["id"])


class Audit:
    """A BROADCAST handler: every replica gets every event."""

    name = "audit"
    replica = ReplicaName()

    @event_handler("orders", "order_placed", handler_type=BROADCAST, reliable_delivery=False)
    def record(self, payload: Any) -> None:
        saw("audit", payload["id"], self.replica)


class LeaderA:
    name = "leader_a"

    @event_handler("orders", "order_placed", handler_type=SINGLETON)
    def handle(self, payload: Any) -> None:
        saw("singleton", payload["id"], "leader_a")


class LeaderB:
    name = "leader_b"

    @event_handler("orders", "order_placed", handler_type=SINGLETON)
    def handle(self, payload: Any) -> None:
        saw("singleton", payload["id"], "leader_b")


class Flaky:
    """Fails on an event's first two deliveries; with requeue_on_error they
    come back until it succeeds."""

    name = "flaky"
    attempts: dict[Any, int] = {}

    @event_handler("orders", "order_placed", requeue_on_error=True)
    def handle(self, payload: Any) -> None:
        with _lock:
            count = self.attempts[payload["id"]] = self.attempts.get(payload["id"], 0) + 1
        saw("flaky", payload["id"], count)
        if count <= 2:
            raise RuntimeError(f"attempt {count} fails")


class Careless:
    """Raises without requeue_on_error: the event is acked, never redelivered."""

    name = "careless"

    @event_handler("orders", "order_placed")
    def handle(self, payload: Any) -> None:
        saw("careless", payload["id"])
        raise RuntimeError("handler failed")


class BadBroadcast:
    """Reliable delivery with the default broadcast identifier: refused."""

    name = "bad_broadcast"

    @event_handler("orders", "order_placed", handler_type=BROADCAST)
    def handle(self, payload: Any) -> None:
        pass


class WrongSignature:
    name = "wrong_signature"

    @event_handler("orders", "order_placed")
    def handle(self) -> None:
        pass


class Ticker:
    """A timer every 0.5 s."""

    name = "ticker"
    replica = ReplicaName()

    @timer(interval=0.5)
    def tick(self) -> None:
        saw("tick", self.replica)
