"""``shimeji show-config``: the configuration as shimeji sees it, secrets hidden.

``${VAR}`` substitutions are done and defaults filled in; passwords in URIs and
the values of keys that look secret are replaced by ``***``. The file is
checked as ``shimeji run`` checks it: a key that is neither shimeji's nor
declared by the services named (their providers' ``config_keys``) is refused.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from shimeji.cli import CommandError
from shimeji.cli.common import add_config_arguments, find_services, load_cli_config
from shimeji.core.config import DEFAULT_CONFIG, redact_uri

__all__ = ["redact", "register", "show_config"]

SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|api_?key|private|credential", re.I)
URI_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.I)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "show-config",
        help="print the configuration after substitution, secrets redacted",
        description="Print the configuration (defaults filled in, ${VAR} substituted), "
        "with passwords and secret-looking values replaced by ***. It is checked as "
        "'shimeji run' checks it: keys of the application must be declared by the "
        "services named (their providers' config_keys).",
    )
    parser.add_argument(
        "services",
        nargs="*",
        metavar="module[:Class]",
        help="the services whose keys the configuration may hold, as for 'shimeji run'",
    )
    add_config_arguments(parser)
    parser.set_defaults(handler=show_config)


def redact(value: Any, key: str = "") -> Any:
    """``value`` with secrets replaced: URI passwords, values of secret-looking keys."""
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if URI_WITH_PASSWORD.match(value):
            return ";".join(redact_uri(part) for part in value.split(";"))
        if SECRET_KEY.search(key) and value:
            return "***"
    elif SECRET_KEY.search(key) and value is not None and not isinstance(value, bool):
        return "***"
    return value


def show_config(args: argparse.Namespace) -> int:
    services = find_services(args.services) if args.services else []
    try:
        config = load_cli_config(args, services)
    except CommandError as exc:
        if not services and "unknown configuration key" in str(exc):
            raise CommandError(
                f"{exc}; if it is a key of your application, name the services that declare "
                "it, as for shimeji run: shimeji show-config MODULE --config FILE"
            ) from None
        raise
    shown = {**DEFAULT_CONFIG, **config}
    declared = sorted(set(config) - set(DEFAULT_CONFIG))
    yaml.safe_dump(redact(shown), sys.stdout, sort_keys=False, default_flow_style=False)
    if declared:
        print(f"# keys of the application, declared by its services: {', '.join(declared)}")
    return 0
