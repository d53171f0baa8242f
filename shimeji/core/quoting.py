"""Quoting values that come from the wire, for log lines and error messages.

Anything a client publishes can end up quoted in a log line or in an error
sent back: a routing key, a correlation id, a header, an argument. Quoted as
it is, a 1 MB argument makes a 1 MB log line and a 1 MB error reply, and a
method name ending in a newline starts a forged log line. ``quote`` makes
every such value short and inert:

- it is written as ``repr`` writes it, so newlines, control characters,
  bidi overrides (U+202E...) and other invisible characters appear as
  escapes (``\\n``, ``\\x1b``, ``\\u202e``), never as themselves;
- it is cut to ``limit`` characters, saying how long it really was;
- nested containers are shown to a few levels only, so quoting never
  recurses deeply or walks a huge structure.
"""

from __future__ import annotations

import logging
import reprlib
import traceback
from typing import Any

__all__ = ["MAX_QUOTED", "escape", "log_error", "quote", "quoted_traceback", "shorten"]

#: The longest quotation, in characters, unless a caller asks for another.
MAX_QUOTED = 200


class _Repr(reprlib.Repr):
    def repr_instance(self, x: Any, level: int) -> str:
        # reprlib's own fallback names the object's address, which would make
        # the simulator's traces differ from run to run.
        try:
            text = repr(x)
        except Exception:
            return f"<{type(x).__name__} with failing repr>"
        if len(text) > self.maxother:
            return shorten(text, self.maxother)
        return text


_repr = _Repr()
_repr.maxlevel = 3
_repr.maxstring = MAX_QUOTED + 20  # cut again below, with the full length noted
_repr.maxlong = 60
_repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 8


def shorten(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def escape(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` as one inert line, unquoted: what is not printable written as an
    escape, cut to ``limit`` characters (saying how long it was)."""
    head = text[:limit]
    if not head.isprintable():
        head = repr(head)[1:-1]
    if len(text) > limit:
        head += f"... ({len(text)} characters)"
    return head


def quote(value: Any, limit: int = MAX_QUOTED) -> str:
    """A short, printable, single-line rendering of ``value`` (a str is quoted).

    Safe for any value: a failing ``__repr__`` gives a placeholder, a deeply
    nested value is shown to a few levels.
    """
    if isinstance(value, str):
        # repr escapes every character that is not printable (str.isprintable),
        # which covers line breaks, C0 and C1 controls and the bidi controls.
        head = repr(value[: limit + 1])
        if len(value) <= limit:
            return head
        return f"{head[:-1]}...{head[-1]} ({len(value)} characters)"
    try:
        text = _repr.repr(value)
    except Exception:  # an int too long to show, say
        text = f"<{type(value).__name__} with failing repr>"
    # A custom __repr__ may return anything: make it one inert line all the same.
    if not text.isprintable():
        text = repr(text)[1:-1]
    return shorten(text, limit)


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def quoted_traceback(exc: BaseException, limit: int = 500) -> str:
    """``exc``'s traceback as Python writes it, its chained exceptions too, but
    each exception's message escaped and cut to ``limit`` characters.

    The frames are the program's own source lines; the message may hold what
    a client sent (``ValueError(argument)``), which written as it is could
    start a forged log line or carry terminal escapes.
    """
    chain: list[tuple[BaseException, str]] = []
    current: BaseException | None = exc
    link = ""
    while current is not None and not any(current is seen for seen, _ in chain):
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for error, link in reversed(chain):
        name = type(error).__qualname__
        module = type(error).__module__
        if module not in ("builtins", "__main__"):
            name = f"{module}.{name}"
        try:
            message = str(error)
        except Exception:
            message = "<exception str() failed>"
        if error.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(error.__traceback__))
        parts.append(f"{name}: {escape(message, limit)}" if message else name)
        parts.append(f"\n{link}" if link else "")
    return "".join(parts).rstrip("\n")


def log_error(
    logger: logging.Logger, exc: BaseException, msg: str, *args: Any, level: int = logging.ERROR
) -> None:
    """``logger.log(level, msg, *args, exc_info=exc)``, but its traceback written
    out by ``quoted_traceback``: handlers that format the record print the
    escaped text, and those that read the exception itself (an error tracker)
    still have it."""
    if not logger.isEnabledFor(level):
        return
    fn, lno, func, _ = logger.findCaller(stacklevel=2)  # the caller of log_error
    record = logger.makeRecord(
        logger.name, level, fn, lno, msg, args, (type(exc), exc, exc.__traceback__), func
    )
    record.exc_text = quoted_traceback(exc)  # what logging.Formatter prints
    logger.handle(record)
