"""A tracer for production: every trace event as a DEBUG log line.

It logs what happened to a call (kind, replica, service, method, call id,
correlation id, detail), never a message body: bodies hold the call's
arguments, some of which may be ``sensitive_arguments``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from shimeji.core.events import Event
from shimeji.core.quoting import escape

__all__ = ["LoggingTracer"]


class LoggingTracer:
    """Logs trace events on the ``shimeji.trace`` logger at DEBUG."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("shimeji.trace")

    @property
    def enabled(self) -> bool:  # type: ignore[override]
        return self.logger.isEnabledFor(logging.DEBUG)

    def request_context(self, context_data: Mapping[str, Any], **call: Any) -> Mapping[str, Any]:
        """Adds nothing to the context data of requests."""
        return context_data

    def emit(self, event: Event) -> None:
        if not self.logger.isEnabledFor(logging.DEBUG):
            return
        # Method names and details come from the wire: one short, inert line.
        target = event.target
        self.logger.debug(
            "%s %s %s call=%s corr=%s %s",
            event.replica,
            event.kind,
            escape(target),
            escape(event.call_id or "-"),
            escape(event.correlation_id or "-"),
            escape(event.detail),
        )
