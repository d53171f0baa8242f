"""What the replay properties compare of two runs: the whole trace, as bytes.

``recorded(trace)`` is the trace as JSON lines with every event's message
(headers and body, as they travelled): every fact the trace holds. The text
timeline (``str(trace)``) is a view rendered from those same events (decoded,
redacted); two runs whose records are equal byte for byte render the same
text, so comparing the record alone is the stricter test of the two, and the
cheaper: rendering the text of both runs cost a replay property more than
either run. (The pytest plugin's ``--shimeji-check-determinism`` compares the
same record.)
"""

from __future__ import annotations

from shimeji.sim.trace import Trace

__all__ = ["recorded"]


def recorded(trace: Trace) -> str:
    """The trace as JSON lines, messages included."""
    return trace.to_jsonl(messages=True)
