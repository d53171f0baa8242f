"""The tracer contract: where core code reports what happens to a call.

Every step of a call (publish, worker start and end, reply, timeout, retry...)
is reported here with the replica that took it. The simulator records the
events with virtual time; in production the default tracer drops them.
"""

from __future__ import annotations

from typing import Any, Protocol

from shimeji.core.transport import Message

__all__ = ["NullTracer", "Tracer"]


class Tracer(Protocol):
    enabled: bool

    def emit(
        self,
        kind: str,
        replica: str,
        service: str | None = None,
        method: str | None = None,
        call_id: str | None = None,
        correlation_id: str | None = None,
        detail: str = "",
        message: Message | None = None,
    ) -> None:
        """Record one event."""


class NullTracer:
    """A tracer that records nothing."""

    enabled = False

    def emit(self, kind: str, replica: str, *args: Any, **kwargs: Any) -> None:
        return None
