"""Context data that follows a call across services, injected into workers."""

from shimeji.core.contextdata import AuthToken, ContextDataProvider, Language, UserAgent, UserId

__all__ = ["AuthToken", "ContextDataProvider", "Language", "UserAgent", "UserId"]
