"""How many Hypothesis examples per second the property tests run.

    python benchmarks/property_rate.py             # the default (ci) profile
    SHIMEJI_HYPOTHESIS_PROFILE=thorough python benchmarks/property_rate.py

Runs ``pytest property_tests --hypothesis-show-statistics`` and prints, per
property, the examples run and the time Hypothesis spent generating and
running them, then the total rate.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "property_tests",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hypothesis-show-statistics",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.stdout.write(done.stdout[-3000:])
        raise SystemExit("the property tests failed")
    total_examples, total_seconds = 0, 0.0
    print(f"{'property':<70} {'examples':>9} {'seconds':>8} {'per s':>7}")
    name, seconds = None, None
    for line in done.stdout.splitlines():
        if match := re.match(r"property_tests/\S+::(\S+):$", line):
            name = match.group(1)
        elif match := re.search(r"during generate phase \(([\d.]+) seconds\)", line):
            seconds = float(match.group(1))
        elif (match := re.search(r"(\d+) passing, (\d+) failing", line)) and name and seconds:
            examples = int(match.group(1)) + int(match.group(2))
            total_examples += examples
            total_seconds += seconds
            print(f"{name:<70} {examples:>9} {seconds:>8.2f} {examples / seconds:>7.0f}")
            name = seconds = None
    if not total_seconds:
        raise SystemExit("no Hypothesis statistics found in the pytest output")
    print(
        f"{'all properties':<70} {total_examples:>9} {total_seconds:>8.2f} "
        f"{total_examples / total_seconds:>7.0f}"
    )


if __name__ == "__main__":
    main()
