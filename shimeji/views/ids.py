"""Canonical ids: stable names for the random ids in a trace.

Correlation ids, call ids and reply queue ids are UUIDs drawn from the
simulation's seeded RNG. They are reproducible for one seed, but any change
that draws one more random number shifts all of them. Canonical ids replace
each UUID, wherever it appears in a record (fields, headers, body, detail),
by a name given in order of first appearance:

- a correlation id becomes ``c1``, ``c2``...;
- the id in a call id ``service.method.<uuid>`` becomes a counter per
  ``service.method``: ``calculator.multiply.1``, ``calculator.multiply.2``;
- a reply queue id (``reply_to``) becomes ``r1``, ``r2``...;
- any other UUID becomes ``id1``, ``id2``...

Records are read in order, and within a record in a fixed order of fields,
so the same events always get the same names.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from shimeji.core.events import Event as EventRecord

if TYPE_CHECKING:
    from shimeji.views.log import MessageRecord

__all__ = ["IdNamer", "canonicalize"]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# What comes right before the UUID of a call id: "service.method."
_CALL_PREFIX = re.compile(r"([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*\.[A-Za-z0-9_\-]+)\.$")


class IdNamer:
    """Gives each UUID a stable name the first time it is seen."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self._counters: dict[str, int] = {}

    def _next(self, prefix: str) -> int:
        self._counters[prefix] = self._counters.get(prefix, 0) + 1
        return self._counters[prefix]

    def name(self, uuid: str, role: str | None, before: str) -> str:
        known = self.names.get(uuid)
        if known is not None:
            return known
        call_prefix = _CALL_PREFIX.search(before)
        if call_prefix is not None:
            new = str(self._next(call_prefix.group(1)))
        elif role == "correlation":
            new = f"c{self._next('c')}"
        elif role == "reply" or (before.endswith("-") and "rpc.reply-" in before):
            new = f"r{self._next('r')}"
        else:
            new = f"id{self._next('id')}"
        self.names[uuid] = new
        return new

    def rewrite(self, text: str | None, role: str | None = None) -> str | None:
        """``text`` with every UUID in it replaced by its name."""
        if not text or "-" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            return self.name(match.group(0), role, text[: match.start()])

        return UUID.sub(replace, text)

    def rewrite_value(self, value: Any) -> Any:
        """Every string inside a JSON-like value (keys too) rewritten."""
        if isinstance(value, str):
            return self.rewrite(value)
        if isinstance(value, dict):
            return {self.rewrite(key): self.rewrite_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.rewrite_value(item) for item in value]
        return value


def canonicalize(records: Iterable[EventRecord], namer: IdNamer | None = None) -> list[EventRecord]:
    """The records with canonical ids (see the module's docstring)."""
    namer = namer or IdNamer()
    result = []
    for record in records:
        correlation_id = namer.rewrite(record.correlation_id, "correlation")
        call_id = namer.rewrite(record.call_id)
        message = record.message
        if message is not None:
            message = _canonical_message(message, namer)
        result.append(
            dataclasses.replace(
                record,
                correlation_id=correlation_id,
                call_id=call_id,
                detail=namer.rewrite(record.detail) or "",
                message=message,
            )
        )
    return result


def _canonical_message(message: MessageRecord, namer: IdNamer) -> MessageRecord:
    correlation_id = namer.rewrite(message.correlation_id, "correlation")
    reply_to = namer.rewrite(message.reply_to, "reply")
    # A reply's routing key is the reply queue's id.
    routing_key = namer.rewrite(message.routing_key, "reply") or ""
    return attrs.evolve(
        message,
        correlation_id=correlation_id,
        reply_to=reply_to,
        routing_key=routing_key,
        headers=namer.rewrite_value(dict(message.headers)),
        body=(
            message.body if message.body_encoding == "base64" else namer.rewrite_value(message.body)
        ),
    )
