"""A tracer for production: every trace event as a DEBUG log line.

It logs what happened to a call (kind, replica, service, method, call id,
correlation id, detail), never a message body: bodies hold the call's
arguments, some of which may be ``sensitive_arguments``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from shimeji.core.transport import Message

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
        if not self.logger.isEnabledFor(logging.DEBUG):
            return
        target = f"{service}.{method}" if service and method else (service or "")
        self.logger.debug(
            "%s %s %s call=%s corr=%s %s",
            replica,
            kind,
            target,
            call_id or "-",
            correlation_id or "-",
            detail,
        )
