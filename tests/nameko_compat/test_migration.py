"""docs/migrating-from-nameko.md, steps 1 and 2, on the simulator: the nameko
shop's own tests pass unchanged under the nameko layer, and so does the
property test added once they did (step 3, production beside nameko on a
broker, is tests/amqp/test_nameko_shop.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["SHIMEJI_PIN_HASHSEED"] = "0"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_shops_nameko_tests_pass_unchanged_on_the_simulator():
    done = run_pytest("-p", "shimeji.compat.pytest_nameko", "examples/nameko_shop/test_services.py")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "5 passed" in done.stdout


def test_without_the_layer_they_cannot_import_nameko():
    """Nothing is patched unless asked for: plain pytest finds no nameko here."""
    done = run_pytest("examples/nameko_shop/test_services.py")
    assert done.returncode != 0
    assert "No module named 'nameko'" in done.stdout


def test_the_property_added_afterwards_holds():
    done = run_pytest(
        "-p", "shimeji.compat.pytest_nameko", "examples/nameko_shop/test_properties.py"
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert "1 passed" in done.stdout


def test_the_property_catches_a_handler_that_is_not_idempotent(tmp_path):
    """The shop with its handler's idempotency check removed: the property fails
    and shrinks to one duplicated event."""
    shop = tmp_path / "examples" / "nameko_shop"
    shop.mkdir(parents=True)
    (tmp_path / "examples" / "__init__.py").write_text("")
    source = ROOT / "examples" / "nameko_shop"
    for name in ("__init__.py", "services.py", "test_properties.py"):
        (shop / name).write_text((source / name).read_text())
    services = (shop / "services.py").read_text()
    check = '        if order["id"] in self.storage["reserved"]:\n            return\n'
    assert check in services
    (shop / "services.py").write_text(services.replace(check, ""))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["SHIMEJI_PIN_HASHSEED"] = "0"
    env["PYTHONPATH"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "shimeji.compat.pytest_nameko", "--rootdir", str(tmp_path),
         str(shop / "test_properties.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stdout[-4000:]
    assert "fault plan: FaultPlan([Duplicate(direction='event')])" in done.stdout
