"""Context data: values that follow a call from service to service.

Context data given to a client travels in the request headers and reaches
every worker down the chain of calls. These providers inject it into a
service.
"""

from __future__ import annotations

from typing import Any

from shimeji.core.container import WorkerContext
from shimeji.core.extensions import DependencyProvider

__all__ = ["AuthToken", "ContextDataProvider", "Language", "UserAgent", "UserId"]


class ContextDataProvider(DependencyProvider):
    """``ContextDataProvider()`` injects a read-only mapping of the worker's context
    data; ``ContextDataProvider("user_id")`` injects that one value (None when absent)."""

    def __init__(self, key: str | None = None) -> None:
        self.key = key

    def get_dependency(self, worker_ctx: WorkerContext) -> Any:
        if self.key is None:
            return worker_ctx.context_data
        return worker_ctx.context_data.get(self.key)


class _KeyedProvider(ContextDataProvider):
    CONTEXT_DATA_KEY = ""

    def __init__(self) -> None:
        super().__init__(self.CONTEXT_DATA_KEY)


class Language(_KeyedProvider):
    """The caller's ``language`` context value."""

    CONTEXT_DATA_KEY = "language"


class UserId(_KeyedProvider):
    """The caller's ``user_id`` context value."""

    CONTEXT_DATA_KEY = "user_id"


class UserAgent(_KeyedProvider):
    """The caller's ``user_agent`` context value."""

    CONTEXT_DATA_KEY = "user_agent"


class AuthToken(_KeyedProvider):
    """The caller's ``auth_token`` context value."""

    CONTEXT_DATA_KEY = "auth_token"
