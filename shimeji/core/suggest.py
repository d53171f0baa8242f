"""Did-you-mean: the known name closest to a mistyped one, for error messages."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` most likely misspells, abbreviates or differs from
    in case only; None if none is close."""
    import difflib  # only when a name is wrong: a smaller service process

    candidates = [str(k) for k in known]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return close[0]
    lowered = {k.lower(): k for k in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    # An abbreviation: the one known name that starts with it.
    starting = [k for k in candidates if len(name) >= 3 and k.lower().startswith(name.lower())]
    return starting[0] if len(starting) == 1 else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)``, or nothing when no known name is close."""
    found = closest(name, known)
    return f" (did you mean {found!r}?)" if found is not None else ""
