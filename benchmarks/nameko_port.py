"""How much of a nameko test suite runs on shimeji with its imports rewritten.

    python benchmarks/nameko_port.py --nameko-src PATH [TEST_FILE ...]

``PATH`` is a checkout of nameko's repository (tests are not in its wheel);
the default files are nameko 2.14.1's tests of its testing tools
(``test/testing/test_services.py``, ``test/testing/test_waiting.py``) and of
``Config`` (``test/test_dependency_providers.py``). Each file is copied to a temporary
directory with its ``nameko`` imports rewritten to shimeji's (what has no
counterpart, such as eventlet, becomes None; nothing else is changed), and
run with ``pytest -p shimeji.testing.nameko_fixtures``; the script prints
how many tests pass, and pytest's line for each failure.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PYTEST = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider"]
PYTEST += ["-p", "shimeji.testing.nameko_fixtures"]
DEFAULT_FILES = [
    "test/testing/test_services.py",
    "test/testing/test_waiting.py",
    "test/test_dependency_providers.py",
]

#: nameko's module -> shimeji's, for ``from X import ...`` lines.
MODULES = {
    "mock": "unittest.mock",
    "nameko.events": "shimeji.events",
    "nameko.exceptions": "shimeji.exceptions",
    "nameko.extensions": "shimeji.extensions",
    "nameko.rpc": "shimeji.rpc",
    "nameko.contextdata": "shimeji.contextdata",
    "nameko.dependency_providers": "shimeji.dependency_providers",
    "nameko.standalone.rpc": "shimeji.standalone",
    "nameko.standalone.events": "shimeji.standalone",
    "nameko.testing.services": "shimeji.testing.services",
    "nameko.testing.utils": "shimeji.testing.utils",
    "nameko.testing.waiting": "shimeji.testing.waiting",
    "nameko.timer": "shimeji.timer",
    "nameko.web.handlers": "shimeji.web",
}


def rewrite(source: str) -> str:
    """nameko's imports as shimeji's; what has no counterpart (eventlet, other
    nameko modules) becomes None, so that only the tests using it fail."""

    def mapped(match: re.Match[str]) -> str:
        return f"from {MODULES.get(match.group(1), match.group(1))} import"

    def stubbed(match: re.Match[str]) -> str:
        bare = [name.split(" as ")[-1].strip() for name in match.group(2).split(",")]
        return " = ".join([*bare, "None"]) + "  # no counterpart on shimeji"

    source = re.sub(r"^from ([\w.]+) import", mapped, source, flags=re.MULTILINE)
    source = re.sub(r"^import (eventlet)$", r"\1 = None  # no counterpart", source, flags=re.M)
    return re.sub(
        r"^from ((?:nameko|eventlet)[\w.]*) import ([^(\n]+)$", stubbed, source, flags=re.M
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nameko-src", required=True, help="a checkout of nameko's repository")
    parser.add_argument("files", nargs="*", default=DEFAULT_FILES)
    args = parser.parse_args()
    root = Path(args.nameko_src)
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for relative in args.files:
            target = Path(tmp) / ("test_ported_" + Path(relative).name.removeprefix("test_"))
            target.write_text(rewrite((root / relative).read_text()))
            names.append(target.name)
        done = subprocess.run(
            [*PYTEST, *names],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
        )
    lines = done.stdout.splitlines()
    for line in lines:
        if line.startswith(("FAILED", "ERROR")):
            print(line)
    print(lines[-1] if lines else done.stderr)


if __name__ == "__main__":
    main()
