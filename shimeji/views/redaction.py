"""Redaction of sensitive arguments in request bodies shown by views.

``@rpc(sensitive_arguments=("password", "card.number"))`` names arguments, or
``argument.key`` paths into them, that must never be displayed. A
``Redactor`` knows the declarations of a set of service classes and replaces
those values in request bodies (``{"args": [...], "kwargs": {...}}``) with
``"********"``, whether the argument was passed by position or by name.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from shimeji.core.container import REDACTED, get_service_name
from shimeji.core.extensions import iter_entrypoints
from shimeji.core.protocol import request_routing_key

__all__ = ["REDACTED", "MethodRedaction", "Redactor"]


@attrs.frozen(slots=True)
class MethodRedaction:
    """What to hide in the requests of one method."""

    parameters: tuple[str, ...]  # positional parameter names, without self
    sensitive: tuple[str, ...]  # "argument" or "argument.key.key" paths

    def redact(self, body: Any) -> Any:
        """A copy of ``body`` with the sensitive values replaced (``body`` is untouched)."""
        if not isinstance(body, Mapping):
            return body
        redacted = copy.deepcopy(dict(body))
        args, kwargs = redacted.get("args"), redacted.get("kwargs")
        for path in self.sensitive:
            head, *rest = path.split(".")
            if isinstance(kwargs, dict) and head in kwargs:
                kwargs[head] = _redact_path(kwargs[head], rest)
            elif isinstance(args, list) and head in self.parameters:
                index = self.parameters.index(head)
                if index < len(args):
                    args[index] = _redact_path(args[index], rest)
        return redacted


def _redact_path(value: Any, path: list[str]) -> Any:
    if not path:
        return REDACTED
    key, rest = path[0], path[1:]
    if isinstance(value, dict) and key in value:
        value[key] = _redact_path(value[key], rest)
    elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
        value[int(key)] = _redact_path(value[int(key)], rest)
    return value


class Redactor:
    """Sensitive-argument declarations of some services, by routing key."""

    def __init__(self, methods: Mapping[str, MethodRedaction] | None = None) -> None:
        self.methods: dict[str, MethodRedaction] = dict(methods or {})

    @classmethod
    def from_service_classes(cls, service_classes: Iterable[type]) -> Redactor:
        redactor = cls()
        for service_cls in service_classes:
            redactor.add(service_cls)
        return redactor

    def add(self, service_cls: type) -> None:
        """Learn the sensitive arguments a service class declares."""
        service = get_service_name(service_cls)
        for method_name, entrypoint in iter_entrypoints(service_cls):
            sensitive = tuple(getattr(entrypoint, "sensitive_arguments", ()))
            if not sensitive:
                continue
            fn = inspect.getattr_static(service_cls, method_name)
            fn = getattr(fn, "__func__", fn)
            parameters = tuple(
                name
                for name, parameter in list(inspect.signature(fn).parameters.items())[1:]
                if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
            )
            self.methods[request_routing_key(service, method_name)] = MethodRedaction(
                parameters, sensitive
            )

    def redact_request(self, routing_key: str, body: Any) -> Any:
        """``body`` with sensitive arguments hidden if it is a request to a known method."""
        rule = self.methods.get(routing_key)
        if rule is None:
            return body
        return rule.redact(body)

    def __bool__(self) -> bool:
        return bool(self.methods)
