"""What ``shimeji sim`` reads from the command line: modules, services, calls.

Each function raises ``CommandError`` with one line saying what is wrong and
what to do, never a traceback.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import os
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from shimeji.cli import CommandError
from shimeji.core.extensions import iter_entrypoints
from shimeji.core.protocol import validate_service_name
from shimeji.core.suggest import did_you_mean

__all__ = [
    "CallSpec",
    "HttpCallSpec",
    "describe_exception",
    "find_services",
    "load_module",
    "parse_call",
    "parse_header",
    "parse_replicas",
    "signature_problems",
    "signature_text",
]


def describe_exception(exc: BaseException, near: str | None = None) -> str:
    """``Type: message (at file:line)`` on one line.

    The location is the last frame in the file ``near`` if given (none if no
    frame is there), else the last frame of all.
    """
    message = " ".join(str(exc).split()) or "(no message)"
    text = f"{type(exc).__name__}: {message}"
    frames = traceback.extract_tb(exc.__traceback__)
    if near is not None:
        resolved = os.path.realpath(near)
        frames = [f for f in frames if os.path.realpath(f.filename) == resolved]
    if frames:
        frame = frames[-1]
        text += f" (at {_relative(frame.filename)}:{frame.lineno})"
    return text


def _relative(path: str) -> str:
    """``path`` relative to the current directory when it lies below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith(os.pardir) else relative


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or "/" in spec


def load_module(spec: str) -> ModuleType:
    """Import MODULE: a file path (``examples/orders.py``) or a dotted name.

    A file inside a package (directories with ``__init__.py``) is imported
    under its dotted name, with the package's parent directory on
    ``sys.path``, so that its own imports of the package work. A dotted name
    is looked up from the current directory first, as ``python -m`` does.
    """
    if _looks_like_path(spec):
        path = Path(spec)
        if not path.is_file():
            raise CommandError(f"no such file: {spec}")
        if path.suffix != ".py":
            raise CommandError(f"{spec} is not a Python file (expected a .py file)")
        path = path.resolve()
        parts = [path.stem]
        root = path.parent
        while (root / "__init__.py").is_file():
            parts.insert(0, root.name)
            root = root.parent
        name = ".".join(parts)
        # The current directory too, as for a dotted name: a file may import the
        # project it sits in (``from examples.calculator import ...``).
        _add_to_path(os.getcwd())
        _add_to_path(str(root))
        module = _import(name, spec)
        loaded = getattr(module, "__file__", None)
        if loaded is None or Path(loaded).resolve() != path:
            raise CommandError(
                f"importing {spec} as {name!r} found another module ({loaded}); "
                "rename the file or run from another directory"
            )
        return module
    if not all(part.isidentifier() for part in spec.split(".")):
        raise CommandError(
            f"{spec!r} is neither a .py file nor a dotted module name (like examples.orders)"
        )
    _add_to_path(os.getcwd())
    return _import(spec, spec)


def _add_to_path(directory: str) -> None:
    if directory not in sys.path:
        sys.path.insert(0, directory)


def _import(name: str, shown: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise CommandError(
                f"no module named {name!r}; give a file path (examples/orders.py) or a module "
                "importable from the current directory"
            ) from None
        raise CommandError(f"importing {shown} failed: {describe_exception(exc)}") from None
    except SyntaxError as exc:
        where = f"{_relative(exc.filename or shown)}:{exc.lineno}"
        raise CommandError(f"{shown} has a syntax error at {where}: {exc.msg}") from None
    except Exception as exc:
        raise CommandError(f"importing {shown} failed: {describe_exception(exc)}") from None


def find_services(module: ModuleType, imported: bool = True) -> list[type]:
    """The service classes a module defines (and, with ``imported``, imports), in
    the order it names them.

    A service class has a ``name`` and at least one entrypoint (``@rpc``).
    """
    found: list[type] = []
    for value in vars(module).values():
        if not isinstance(value, type) or value in found:
            continue
        if not imported and value.__module__ != module.__name__:
            continue
        name = getattr(value, "name", None)
        if not isinstance(name, str) or validate_service_name(name) is not None:
            continue
        if any(True for _ in iter_entrypoints(value)):
            found.append(value)
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class CallSpec:
    """``service.method(*args, **kwargs)`` as given to ``--call``."""

    service: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        parts = [repr(arg) for arg in self.args]
        parts += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"{self.service}.{self.method}({', '.join(parts)})"


_LITERALS = "numbers, strings, True/False/None, and lists, tuples and dicts of them"


@dataclasses.dataclass(frozen=True, slots=True)
class HttpCallSpec:
    """``METHOD /path [body]`` as given to ``--call``: a request to the HTTP routes.

    A body that parses as JSON is sent as JSON, any other as text.
    """

    method: str
    path: str
    body: str | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def request(self) -> dict[str, Any]:
        """The keyword arguments of ``cluster.http.request`` (but headers)."""
        if self.body is None:
            return {}
        try:
            return {"json": json.loads(self.body)}
        except ValueError:
            return {"data": self.body}


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_HTTP_CALL = re.compile(r"([A-Za-z]+)\s+(/\S*)(?:\s+(.*))?", re.DOTALL)


def parse_call(text: str) -> CallSpec | HttpCallSpec:
    """Parse ``--call``: a call of ``service.method`` whose arguments are literals,
    or an HTTP request, ``METHOD /path [body]``.

    Nothing is evaluated: the expression is parsed with ``ast`` and each
    argument read with ``ast.literal_eval``.
    """
    example = "e.g. --call 'calculator.multiply(6, 7)' or --call 'GET /orders/1'"
    http = _HTTP_CALL.fullmatch(text.strip())
    if http is not None:
        method, path, body = http.groups()
        if method.upper() not in HTTP_METHODS:
            raise CommandError(
                f"invalid --call {text!r}: {method!r} is not an HTTP method "
                f"({', '.join(HTTP_METHODS)}); e.g. --call 'GET /orders/1'"
            )
        return HttpCallSpec(method.upper(), path, body)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise CommandError(
            f"invalid --call {text!r}: not a Python call expression ({exc.msg}); {example}"
        ) from None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        raise CommandError(
            f"invalid --call {text!r}: expected service.method(arguments); {example}"
        )
    method = call.func.attr
    service = _dotted(call.func.value)
    if service is None:
        raise CommandError(
            f"invalid --call {text!r}: {ast.unparse(call.func.value)!r} is not a service name; "
            f"{example}"
        )
    args = []
    for position, node in enumerate(call.args, start=1):
        if isinstance(node, ast.Starred):
            raise CommandError(
                f"invalid --call {text!r}: *{ast.unparse(node.value)} is not allowed"
            )
        args.append(_literal(node, f"argument {position}", text))
    kwargs: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise CommandError(
                f"invalid --call {text!r}: **{ast.unparse(keyword.value)} is not allowed"
            )
        kwargs[keyword.arg] = _literal(keyword.value, f"argument {keyword.arg}=", text)
    return CallSpec(service, method, tuple(args), kwargs)


def parse_header(text: str) -> tuple[str, str]:
    """``--header 'Name: value'`` as ``(name, value)``."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise CommandError(
            f"invalid --header {text!r}: expected 'Name: value', e.g. --header 'nameko.user_id: 7'"
        )
    if any(ord(char) < 32 and char != "\t" for char in value):
        raise CommandError(f"invalid --header {text!r}: a header value is one line")
    return name, value.strip()


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _literal(node: ast.expr, what: str, text: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise CommandError(
            f"invalid --call {text!r}: {what} {ast.unparse(node)!r} is not a literal "
            f"(allowed: {_LITERALS})"
        ) from None


def parse_replicas(values: list[str]) -> dict[str, int]:
    """``["calculator=3", ...]`` from ``--replicas`` as ``{"calculator": 3}``."""
    counts: dict[str, int] = {}
    for value in values:
        service, sep, number = value.partition("=")
        service, number = service.strip(), number.strip()
        if not sep or not service:
            raise CommandError(
                f"invalid --replicas {value!r}: expected SERVICE=N, e.g. calculator=3"
            )
        problem = validate_service_name(service)
        if problem:
            raise CommandError(f"invalid --replicas {value!r}: {problem}")
        if not number.isdigit() or int(number) < 1:
            raise CommandError(
                f"invalid --replicas {value!r}: the number of replicas must be a whole number >= 1"
            )
        if service in counts:
            raise CommandError(f"--replicas names {service!r} twice")
        counts[service] = int(number)
    return counts


def _parameters(fn: Any) -> list[inspect.Parameter]:
    """A method's parameters without ``self``."""
    return list(inspect.signature(fn).parameters.values())[1:]


def signature_text(fn: Any) -> str:
    """``(a, b=2, *, c)``: a method's signature as its caller sees it (no ``self``)."""
    return str(inspect.signature(fn).replace(parameters=_parameters(fn)))


def signature_problems(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """Every way ``fn(self, *args, **kwargs)`` would fail to bind: all missing and
    unexpected arguments, not only the first Python names. Empty if it binds."""
    P = inspect.Parameter
    parameters = _parameters(fn)
    positional = [p for p in parameters if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    takes_varargs = any(p.kind == P.VAR_POSITIONAL for p in parameters)
    takes_varkw = any(p.kind == P.VAR_KEYWORD for p in parameters)
    problems: list[str] = []
    if len(args) > len(positional) and not takes_varargs:
        problems.append(
            f"{len(args)} positional arguments given, and it takes "
            f"{'at most ' if any(p.default is not P.empty for p in positional) else ''}"
            f"{len(positional)}"
        )
    filled = {p.name for p in positional[: len(args)]}
    named = {p.name: p for p in parameters if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)}
    unexpected = []
    for key in kwargs:
        if key in filled:
            problems.append(f"{key!r} given twice, by position and by name")
        elif key in named:
            filled.add(key)
        elif not takes_varkw:
            unexpected.append(key)
    if unexpected:
        free = [name for name in named if name not in filled]
        plural = "s" if len(unexpected) > 1 else ""
        listed = ", ".join(f"{key!r}{did_you_mean(key, free)}" for key in unexpected)
        problems.append(f"unexpected keyword argument{plural} {listed}")
    missing = [
        p.name
        for p in parameters
        if p.default is P.empty
        and p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)
        and p.name not in filled
    ]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        problems.append(f"missing argument{plural} {', '.join(repr(m) for m in missing)}")
    return problems
