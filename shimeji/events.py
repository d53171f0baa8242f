"""Events: nameko's publish-subscribe.

    class OrderService:
        name = "orders"
        dispatch = EventDispatcher()

        @rpc
        def place(self, order):
            self.dispatch("order_placed", {"id": order["id"]})

    class EmailService:
        name = "email"

        @event_handler("orders", "order_placed")
        def send_confirmation(self, payload):
            ...

``handler_type`` is ``SERVICE_POOL`` (each subscribing service handles each
event once, shared among its replicas; the default), ``SINGLETON`` (one
handler among all subscribing services) or ``BROADCAST`` (every replica).
"""

from shimeji.core.exceptions import EventHandlerConfigurationError
from shimeji.core.pubsub import (
    BROADCAST,
    SERVICE_POOL,
    SINGLETON,
    EventDispatcher,
    EventHandler,
    event_handler,
)

__all__ = [
    "BROADCAST",
    "SERVICE_POOL",
    "SINGLETON",
    "EventDispatcher",
    "EventHandler",
    "EventHandlerConfigurationError",
    "event_handler",
]
