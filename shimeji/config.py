"""Configuration files: ``load_config("config.yaml")`` with ``${VAR:default}`` substitution."""

from shimeji.core.config import DEFAULT_CONFIG, RetryPolicy, Settings, load_config, redact_uri

__all__ = ["DEFAULT_CONFIG", "RetryPolicy", "Settings", "load_config", "redact_uri"]
