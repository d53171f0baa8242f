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
    """The shop with its handler's idempotency check removed: the property holds
    without faults, and fails as soon as one event is delivered twice."""
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
    driver = tmp_path / "drive.py"
    driver.write_text(
        "from shimeji.compat import nameko\n"
        "nameko.install()\n"
        "from shimeji.sim.faults import Duplicate, FaultPlan\n"
        "from examples.nameko_shop import test_properties as t\n"
        "check = t.test_no_order_is_reserved_twice_and_the_stock_adds_up.hypothesis.inner_test\n"
        "check(seed=0, plan=FaultPlan([]), schedule=(), quantities=[1, 2])\n"
        "print('holds without faults')\n"
        "try:\n"
        "    check(seed=0, plan=FaultPlan([Duplicate(direction='event')]), schedule=(),\n"
        "          quantities=[1, 2])\n"
        "except AssertionError as exc:\n"
        "    print('fails:', ' '.join(str(exc).split())[:200])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path), SHIMEJI_PIN_HASHSEED="0")
    done = subprocess.run(
        [sys.executable, str(driver)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "holds without faults"
    assert lines[1].startswith("fails:"), lines  # the stock no longer adds up
