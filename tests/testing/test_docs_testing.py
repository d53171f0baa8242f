"""docs/testing.md's example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_example_passes(tmp_path):
    """The test files shown in docs/testing.md pass."""
    text = (ROOT / "docs" / "testing.md").read_text()
    files = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL):
        first = block.splitlines()[0]
        if first.startswith("# test_") and first.endswith(".py"):
            files[first[2:]] = block
    assert files
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
