"""nameko 2.14.1's documentation examples and their tests, unmodified, on the simulator.

``.ci/nameko-examples.sh`` (run by ``.ci/test-tools.sh``) unpacks nameko's
``docs/`` from its source distribution on PyPI, outside this repository, and
makes a virtualenv with shimeji and what the examples import (nameko itself
is not installed there). This test runs nameko's own test files for those
examples with ``pytest -p shimeji.compat.pytest_nameko``: under the layer
``import nameko.rpc`` is shimeji's, the fixtures are the simulator's, and no
broker is used. Every test must pass but those listed in ``NOT_RUN``, each
for a reason docs/fidelity.md gives.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / ".ci" / ".nameko-examples"

#: The tests left out, and why (docs/fidelity.md, "Running nameko code").
NOT_RUN = {
    "examples/test/test_examples.py::TestWebsocketRpc::test_websocket_rpc": (
        "nameko's websocket hub is not supported (nameko.web.websocket fails at import)"
    ),
}
#: How many of nameko's example tests run and pass.
EXPECTED_PASSED = 39


def _setup() -> tuple[Path, Path]:
    lines = SETUP.read_text().split() if SETUP.exists() else []
    if len(lines) != 2 or not all(Path(line).exists() for line in lines):
        reason = "nameko's examples are not set up: run bash .ci/test-tools.sh"
        if os.environ.get("CI") == "true":  # .ci/run sets them up: missing is a failure
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return Path(lines[0]), Path(lines[1])


def test_nameko_documentation_examples_pass_unmodified(tmp_path):
    docs, python = _setup()
    report = tmp_path / "report.xml"
    deselect = [arg for test in NOT_RUN for arg in ("--deselect", test)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["SHIMEJI_PIN_HASHSEED"] = "0"
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-p",
            "shimeji.compat.pytest_nameko",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--junitxml={report}",
            *deselect,
            "examples/test",
            "examples/testing",
        ],
        cwd=docs,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcomes: dict[str, str] = {}
    for case in cases:
        name = f"{case.get('classname')}::{case.get('name')}"
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        outcomes[name] = "failed" if failed else "skipped" if skipped else "passed"
    failed = sorted(name for name, outcome in outcomes.items() if outcome != "passed")
    assert not failed, f"{failed}\n{done.stdout[-6000:]}"
    assert len(outcomes) == EXPECTED_PASSED, done.stdout[-3000:]
    assert done.returncode == 0
