"""Golden files: compare a text (a trace, a diagram) with the copy kept beside the tests.

    from shimeji.testing.golden import assert_golden

    def test_orders_trace(sim_cluster):
        ...
        assert_golden(render(EventLog.from_cluster(sim_cluster, canonical_ids=True)),
                      Path(__file__).parent / "golden" / "orders.txt")

When the text differs, the test fails with a unified diff (golden file
first, new text second). When the change is intended, regenerate the files
by running the tests with ``SHIMEJI_UPDATE_GOLDEN=1``; a missing golden file
is an error unless that variable is set, so a forgotten file cannot pass.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

__all__ = ["UPDATE_VARIABLE", "GoldenMismatch", "assert_golden", "updating"]

#: The environment variable that rewrites golden files instead of comparing.
UPDATE_VARIABLE = "SHIMEJI_UPDATE_GOLDEN"


class GoldenMismatch(AssertionError):
    """The text differs from its golden file (the message is a unified diff)."""


def updating() -> bool:
    """Whether golden files are being regenerated (``SHIMEJI_UPDATE_GOLDEN=1``)."""
    return os.environ.get(UPDATE_VARIABLE, "") not in ("", "0", "false", "no")


def assert_golden(actual: str, path: str | os.PathLike[str], *, context: int = 3) -> None:
    """Fail with a readable diff unless ``actual`` equals the file at ``path``.

    With ``SHIMEJI_UPDATE_GOLDEN=1`` the file is (re)written instead.
    """
    golden = Path(path)
    if updating():
        golden.parent.mkdir(parents=True, exist_ok=True)
        if not golden.exists() or golden.read_text(encoding="utf-8") != actual:
            golden.write_text(actual, encoding="utf-8")
        return
    if not golden.exists():
        raise GoldenMismatch(
            f"no golden file {golden}; create it by running the test with {UPDATE_VARIABLE}=1"
        )
    expected = golden.read_text(encoding="utf-8")
    if expected == actual:
        return
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"{golden} (golden)",
            tofile=f"{golden} (now)",
            n=context,
        )
    )
    raise GoldenMismatch(
        f"{golden} differs from what the code produces now:\n{diff}\n"
        f"If the change is intended, regenerate with: {UPDATE_VARIABLE}=1 pytest <this test>"
    )
