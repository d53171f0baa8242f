"""The README's quickstart works as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def blocks() -> dict[str, str]:
    """README code blocks whose first line names a file (``# name.py``)."""
    text = (ROOT / "README.md").read_text()
    found = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL):
        first = block.splitlines()[0]
        if first.startswith("# ") and first.endswith(".py"):
            found[first[2:]] = block
    return found


def test_quickstart_runs_as_written(tmp_path):
    """services.py and test_services.py from the README pass, and print the trace shown."""
    files = blocks()
    assert set(files) >= {"services.py", "test_services.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_services.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"```\n(    time  replica.*?)\n\.\.\.\n```", readme, re.DOTALL).group(1)
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    for line in shown.splitlines():
        assert line.rstrip() in printed
