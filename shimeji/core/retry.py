"""Retrying what the broker refuses: one rule, used by every publish and connect.

``with_retry`` runs an operation, and when it raises ``BrokerUnavailable``
waits as the retry policy says (``RPC_RETRY_POLICY``, kombu's shape) and tries
again; when the policy is spent, or the next attempt would come after the
caller's deadline, it raises ``PublishFailed``. Each retry is a ``retry``
event, each failure a ``publish_failed`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from shimeji.core.config import RetryPolicy
from shimeji.core.events import Event
from shimeji.core.exceptions import PublishFailed
from shimeji.core.runtime import Runtime
from shimeji.core.tracing import Tracer
from shimeji.core.transport import BrokerUnavailable, Message, Transport

__all__ = ["publish_with_retry", "with_retry"]


def with_retry(
    operation: Callable[[], Any],
    *,
    runtime: Runtime,
    tracer: Tracer,
    policy: RetryPolicy,
    label: str,
    what: str,
    correlation_id: str | None = None,
    call_id: str | None = None,
    deadline: float | None = None,
    failed: BrokerUnavailable | None = None,
) -> Any:
    """Run ``operation``, retrying on ``BrokerUnavailable`` as ``policy`` says.

    Raises ``PublishFailed`` naming ``what`` when every attempt failed, or when
    the next attempt would come after ``deadline`` (a time on ``runtime``'s
    clock: a call's timeout bounds its retries). Other errors (``Unroutable``
    among them: retrying cannot create a queue) pass through at once.
    ``failed``: the first attempt was made already, and failed so.
    """
    attempts = 0
    waits = None
    while True:
        attempts += 1
        try:
            if failed is not None:
                exc, failed = failed, None
                raise exc
            return operation()
        except BrokerUnavailable as exc:
            if waits is None:
                waits = policy.intervals()
            wait = next(waits, None)
            if wait is not None and deadline is not None and runtime.now() + wait > deadline:
                wait = None  # the caller would have given up by then
            if wait is None:
                tracer.emit(
                    Event(
                        kind="publish_failed",
                        replica=label,
                        call_id=call_id,
                        correlation_id=correlation_id,
                        detail=f"{what}: gave up after {attempts} attempt(s): {exc}",
                    )
                )
                raise PublishFailed(what, attempts, exc) from None
            tracer.emit(
                Event(
                    kind="retry",
                    replica=label,
                    call_id=call_id,
                    correlation_id=correlation_id,
                    detail=f"{what}: attempt {attempts} failed ({exc}); next in {wait:g}s",
                )
            )
            runtime.sleep(wait)


def publish_with_retry(
    transport: Transport,
    runtime: Runtime,
    tracer: Tracer,
    message: Message,
    *,
    mandatory: bool,
    policy: RetryPolicy,
    label: str,
    call_id: str | None = None,
    deadline: float | None = None,
    on_lost: Callable[[BrokerUnavailable], None] | None = None,
) -> None:
    """Publish, retrying as ``policy`` says; ``PublishFailed`` if it never works
    (then nothing was sent). ``on_lost``: see ``Transport.publish``."""
    # The first attempt straight away: publishing usually works, and this is
    # on the path of every call.
    try:
        if on_lost is None:
            transport.publish(message, mandatory=mandatory)
        else:
            transport.publish(message, mandatory=mandatory, on_lost=on_lost)
        return
    except BrokerUnavailable as exc:
        failed = exc
    if on_lost is None:
        operation = partial(transport.publish, message, mandatory=mandatory)
    else:
        operation = partial(transport.publish, message, mandatory=mandatory, on_lost=on_lost)
    with_retry(
        operation,
        runtime=runtime,
        tracer=tracer,
        policy=policy,
        label=label,
        what=message.routing_key,
        correlation_id=message.correlation_id,
        call_id=call_id,
        deadline=deadline,
        failed=failed,
    )
