"""Configuration files: ``load_config("config.yaml")`` with ``${VAR:default}`` substitution.

Reading a file and the environment happens here; the keys, their defaults and
their checks are ``shimeji.core.config``'s (``Settings``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from shimeji.core.config import DEFAULT_CONFIG, RetryPolicy, Settings, redact_uri
from shimeji.core.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_CONFIG",
    "RetryPolicy",
    "Settings",
    "load_config",
    "redact_uri",
    "substitute_env",
]

_ENV_PATTERN = re.compile(r"\$\{([^}{:]+)(?::([^}{]*))?\}")


def substitute_env(
    text: str, environ: Mapping[str, str] | None = None, where: str = "value"
) -> str:
    """Replace ``${VAR}`` and ``${VAR:default}`` in ``text`` from the environment."""
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1).strip(), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigurationError(
            f"{where} uses ${{{name}}} but the environment variable {name} is not set; "
            f"set it, or give a default as ${{{name}:default}}"
        )

    return _ENV_PATTERN.sub(replace, text)


def _env_loader(environ: Mapping[str, str] | None, source: str) -> type[yaml.SafeLoader]:
    class EnvLoader(yaml.SafeLoader):
        pass

    def construct_str(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        raw = loader.construct_scalar(node)
        if "${" not in raw:
            return raw
        where = f"{source}, line {node.start_mark.line + 1}"
        value = substitute_env(raw, environ, where)
        if node.style is None and _ENV_PATTERN.fullmatch(raw.strip()):
            # An unquoted value that is one whole ${...} takes the YAML type of
            # what it became: ${PORT:5672} is the number 5672, ${DEBUG:false}
            # a bool. Quote it to keep a string.
            try:
                return yaml.safe_load(value) if value.strip() else value
            except yaml.YAMLError:
                return value
        return value

    EnvLoader.add_constructor("tag:yaml.org,2002:str", construct_str)
    return EnvLoader


def load_config(
    path: str | os.PathLike[str],
    extra_keys: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Load a YAML configuration file, substituting ``${VAR}`` / ``${VAR:default}``.

    The result is checked with ``Settings.from_config``; any problem raises
    ``ConfigurationError`` naming the file and the key.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {source} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read configuration file {source}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_env_loader(environ, source))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigurationError(
            f"configuration file {source} is not valid YAML{line}: {exc.problem}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"configuration file {source} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"configuration file {source} must hold a mapping of keys to values, "
            f"not a {type(data).__name__}"
        )
    try:
        Settings.from_config(data, extra_keys)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None
    return data
