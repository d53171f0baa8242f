"""Views of a simulation's trace: text, mermaid, perfetto, html, and the jsonl log.

    from shimeji.views import EventLog, render

    log = EventLog.from_cluster(cluster, canonical_ids=True)
    print(render(log, "mermaid"))

Every view is rendered from the canonical event log (``EventLog``), which is
also the ``jsonl`` view: a log written to a file renders the same views
later (``EventLog.from_jsonl``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shimeji.views.log import EventLog, EventRecord, LogFormatError, MessageRecord
from shimeji.views.redaction import Redactor

__all__ = [
    "FORMATS",
    "EventLog",
    "EventRecord",
    "LogFormatError",
    "MessageRecord",
    "Redactor",
    "render",
]


def _jsonl(log: EventLog, title: str) -> str:
    return log.to_jsonl()


def _text(log: EventLog, title: str, **options: Any) -> str:
    from shimeji.views.text import render_text

    return render_text(log, **options)


def _mermaid(log: EventLog, title: str) -> str:
    from shimeji.views.mermaid import render_mermaid

    return render_mermaid(log)


def _perfetto(log: EventLog, title: str) -> str:
    from shimeji.views.perfetto import render_perfetto

    return render_perfetto(log, title)


def _html(log: EventLog, title: str) -> str:
    from shimeji.views.html import render_html

    return render_html(log, title)


_RENDERERS: dict[str, Callable[..., str]] = {
    "text": _text,
    "mermaid": _mermaid,
    "perfetto": _perfetto,
    "html": _html,
    "jsonl": _jsonl,
}

#: The names ``render`` accepts.
FORMATS: tuple[str, ...] = tuple(_RENDERERS)


def render(
    log: EventLog, format: str = "text", *, title: str = "shimeji trace", **options: Any
) -> str:
    """``log`` rendered in ``format`` (one of ``FORMATS``); ``title`` names the html page.

    ``options`` go to the text view (``shimeji.views.text.render_text``: the
    summary ``shimeji sim`` prints); the other views take none.
    """
    renderer = _RENDERERS.get(format)
    if renderer is None:
        raise ValueError(f"unknown view format {format!r}; choose one of {', '.join(FORMATS)}")
    if options and format != "text":
        raise TypeError(f"the {format} view takes no options, got {', '.join(options)}")
    return renderer(log, title, **options)
