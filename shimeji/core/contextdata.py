"""Context data: values that follow a call from service to service.

Context data given to a client travels in the request headers and reaches
every worker down the chain of calls. These providers inject it into a
service.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from shimeji.core.container import WorkerContext
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.extensions import DependencyProvider

__all__ = ["AuthToken", "ContextDataProvider", "Language", "UserAgent", "UserId"]


class ContextDataProvider(DependencyProvider):
    """``ContextDataProvider()`` injects a read-only mapping of the worker's context
    data; ``ContextDataProvider("user_id")`` injects that one value (None when absent).

    A subclass that sets ``context_key`` (nameko's form) injects that key's value:

        class SessionId(ContextDataProvider):
            context_key = "session_id"
    """

    #: The key whose value is injected; None injects the whole mapping.
    context_key: str | None = None

    def __init__(self, key: str | None = None) -> None:
        if key is None:
            key = type(self).context_key
        if key is not None and (not isinstance(key, str) or not key):
            raise ConfigurationError(
                f"a context data key is a non-empty string such as 'user_id', got {key!r}"
            )
        self.key = key

    def get_dependency(self, worker_ctx: WorkerContext) -> Any:
        if self.key is None:
            return MappingProxyType(worker_ctx.data)  # read-only, as it came
        return worker_ctx.data.get(self.key)


class Language(ContextDataProvider):
    """The caller's ``language`` context value."""

    context_key = "language"


class UserId(ContextDataProvider):
    """The caller's ``user_id`` context value."""

    context_key = "user_id"


class UserAgent(ContextDataProvider):
    """The caller's ``user_agent`` context value."""

    context_key = "user_agent"


class AuthToken(ContextDataProvider):
    """The caller's ``auth_token`` context value."""

    context_key = "auth_token"
