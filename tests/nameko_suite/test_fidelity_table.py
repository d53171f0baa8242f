"""docs/fidelity.md's table of nameko's test files matches the ports: each
row's "N of M ported" is the number of distinct nameko tests named by a
``# follows nameko`` line under tests/."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(test/[\w/]+\.py)` \| (\d+) of (\d+) \|", re.MULTILINE)
FOLLOWS = re.compile(r"# follows nameko (test/[\w/]+\.py)::(\S+)")


def test_the_table_counts_the_ported_tests():
    rows = ROW.findall((ROOT / "docs" / "fidelity.md").read_text())
    assert len(rows) >= 15
    ported = defaultdict(set)
    for path in (ROOT / "tests").rglob("*.py"):
        for file, test in FOLLOWS.findall(path.read_text()):
            ported[file].add(test)
    for file, count, total in rows:
        assert len(ported[file]) == int(count), (file, sorted(ported[file]))
        assert int(count) <= int(total), file
    # every file with a port has its row
    assert set(ported) <= {file for file, _, _ in rows}
