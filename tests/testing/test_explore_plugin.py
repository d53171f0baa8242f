"""The shimeji_explore marker, --shimeji-replay, shimeji sim --replay and PYTHONHASHSEED."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PAYMENTS = """
import pytest

from shimeji.exceptions import RpcTimeout
from shimeji.rpc import rpc

CHARGES = []


class PaymentService:
    name = "payment_service"

    @rpc
    def charge(self, order_id, amount):
        CHARGES.append(order_id)  # not idempotent
        return {"order_id": order_id, "charged": amount}


@pytest.mark.shimeji_explore(runs=300)
def test_charged_once(sim_cluster):
    CHARGES.clear()
    sim_cluster.add_service(PaymentService, replicas=2)
    client = sim_cluster.rpc_proxy(timeout=5)
    for order_id in range(3):
        try:
            client.payment_service.charge(order_id, 10)
        except RpcTimeout:
            pass
    sim_cluster.advance(10)
    assert sorted(CHARGES) == sorted(set(CHARGES))


@pytest.mark.shimeji_explore(runs=20, kinds=("delay", "duplicate"))
def test_passes(sim_cluster):
    sim_cluster.add_service(PaymentService)
    assert sim_cluster.rpc.payment_service.charge(1, 2)["charged"] == 2
"""

FILE = ".shimeji/failures/test_payments.py_test_charged_once-seed0.json"


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _run(args: list[str], cwd: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=300, env=_env(**env)
    )


def test_explore_finds_shrinks_saves_and_prints_one_replay_line(pytester: pytest.Pytester):
    """The failing property is explored, shrunk to one duplicate, saved under
    .shimeji/failures, and reported with the line that replays it; the passing
    one reports its runs."""
    pytester.makepyfile(test_payments=PAYMENTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*exploration: run * of 300 failed (AssertionError*",
            "*shrunk in * runs to: seed 0, fault plan FaultPlan([[]Duplicate()[]]), schedule []*",
            f"*failure file: {FILE}",
            f"*replay: *pytest test_payments.py::test_charged_once --shimeji-replay={FILE}",
            "*shimeji exploration*",
            "test_payments.py::test_passes: 20 runs in *runs/s, 1 process), no failure",
        ]
    )
    assert len([line for line in result.outlines if "replay: " in line]) == 1
    data = json.loads((pytester.path / FILE).read_text())
    assert data["test"] == "test_payments.py::test_charged_once"
    assert data["faults"] == "FaultPlan([Duplicate()])"
    assert data["trace"] and all(json.loads(line) for line in data["trace"])


def test_the_failure_replays_in_another_process_with_pytest_and_shimeji_sim(
    pytester: pytest.Pytester,
):
    """--shimeji-replay and `shimeji sim --replay` run the saved failure in new
    processes: the same failure, the recorded trace event for event."""
    pytester.makepyfile(test_payments=PAYMENTS)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1, passed=1)
    replayed = _run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--shimeji-replay={FILE}"],
        pytester.path,
    )
    assert replayed.returncode == 1, replayed.stdout
    assert "1 failed, 1 deselected" in replayed.stdout
    assert "the trace is the recorded one, event for event" in replayed.stdout
    assert "assert [0, 1, 1, 2] == [0, 1, 2]" in replayed.stdout
    shown = _run([sys.executable, "-m", "shimeji", "sim", "--replay", FILE], pytester.path)
    assert shown.returncode == 1, shown.stderr
    assert "the trace is the recorded one, event for event (34 events)" in shown.stderr
    assert "fault_duplicate" in shown.stdout
    assert "the test raised AssertionError" in shown.stderr


def test_a_replay_that_diverges_names_the_first_differing_event(pytester: pytest.Pytester):
    """A failure file whose trace no longer matches the code says where they part."""
    pytester.makepyfile(test_payments=PAYMENTS)
    pytester.runpytest("-p", "no:cacheprovider")
    path = pytester.path / FILE
    data = json.loads(path.read_text())
    event = json.loads(data["trace"][3])
    event["detail"] = "from somebody else"
    data["trace"][3] = json.dumps(event, sort_keys=True)
    path.write_text(json.dumps(data))
    result = pytester.runpytest("-p", "no:cacheprovider", f"--shimeji-replay={FILE}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the replay did not follow the recorded run.*event 3 (0.001000 payment_service-1 "
            "deliver payment_service.charge) is the first that differs; detail: 'from somebody "
            "else' in the recorded, '' in the replayed*"
        ]
    )


def test_replay_refuses_what_it_cannot_replay(pytester: pytest.Pytester):
    """A file for a test that is not collected, or no failure file at all, is a usage error."""
    pytester.makepyfile(test_payments=PAYMENTS)
    pytester.runpytest("-p", "no:cacheprovider")
    data = json.loads((pytester.path / FILE).read_text())
    data["test"] = "test_payments.py::test_renamed"
    (pytester.path / "renamed.json").write_text(json.dumps(data))
    result = pytester.runpytest("-p", "no:cacheprovider", "--shimeji-replay=renamed.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*is for the test 'test_payments.py::test_renamed'*"])
    result = pytester.runpytest("-p", "no:cacheprovider", "--shimeji-replay=missing.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--shimeji-replay: no failure file at 'missing.json'*"])


@pytest.mark.parametrize(
    ("decorator", "signature", "message"),
    [
        ("(500)", "sim_cluster", "shimeji_explore takes keyword arguments only"),
        ("(rounds=5)", "sim_cluster", "shimeji_explore does not take rounds; it takes runs,"),
        ("(runs=5)", "", "an exploring or replayed test takes the sim_cluster fixture"),
        ("(kinds=('fire',))", "sim_cluster", "unknown fault kind(s) ['fire']: choose among"),
    ],
)
def test_marker_misuse_is_explained(pytester: pytest.Pytester, decorator, signature, message):
    pytester.makepyfile(f"""
import pytest

@pytest.mark.shimeji_explore{decorator}
def test_x({signature}):
    pass
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert message in output, output


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="needs pytest-xdist")
def test_under_xdist_each_worker_saves_and_reports_its_own_failure(pytester: pytest.Pytester):
    """pytest -n 2: the failing test's replay line and file are right, and replay."""
    pytester.makepyfile(test_payments=PAYMENTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            f"*replay: PYTHONHASHSEED=* pytest test_payments.py::test_charged_once "
            f"--shimeji-replay={FILE}"
        ]
    )
    replayed = _run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--shimeji-replay={FILE}"],
        pytester.path,
    )
    assert "the trace is the recorded one, event for event" in replayed.stdout


SETS = """
from shimeji.rpc import rpc


class Tags:
    name = "tags"

    @rpc
    def all(self):
        return list({"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"})


def test_tags(sim_cluster):
    sim_cluster.add_service(Tags)
    tags = sim_cluster.rpc.tags.all()
    print("ORDER", tags)
    assert False, "always fails, to print its replay line"
"""


def test_the_replay_line_carries_the_hash_seed_that_orders_sets(pytester: pytest.Pytester):
    """Started without PYTHONHASHSEED, pytest runs under one the plugin picked and the
    replay line names it; running that line gives the same set order, and the same
    trace byte for byte."""
    pytester.makepyfile(test_sets=SETS)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "test_sets.py"]
    first = _run(command, pytester.path, PYTHONHASHSEED=None, SHIMEJI_PIN_HASHSEED=None)
    assert first.returncode == 1, first.stdout
    line = re.search(r"replay: PYTHONHASHSEED=(\d+) pytest (\S+) --shimeji-seed=0", first.stdout)
    assert line is not None, first.stdout
    order = re.search(r"ORDER (.*)", first.stdout).group(1)
    again = _run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-s",
            line.group(2),
            "--shimeji-seed=0",
        ],
        pytester.path,
        PYTHONHASHSEED=line.group(1),
    )
    assert re.search(r"ORDER (.*)", again.stdout).group(1) == order
    assert f"replay: PYTHONHASHSEED={line.group(1)} pytest" in again.stdout
    # Another hash seed orders the set otherwise (8 strings: 40,320 orders).
    other = _run(command, pytester.path, PYTHONHASHSEED=str(int(line.group(1)) ^ 1))
    assert re.search(r"ORDER (.*)", other.stdout).group(1) != order


def test_without_pinning_the_report_says_the_hash_seed_was_random(pytester: pytest.Pytester):
    """SHIMEJI_PIN_HASHSEED=0 keeps a random hash seed, and the report says what that means."""
    pytester.makepyfile(test_sets=SETS)
    done = _run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_sets.py"],
        pytester.path,
        PYTHONHASHSEED=None,
        SHIMEJI_PIN_HASHSEED="0",
    )
    assert "replay: pytest test_sets.py::test_tags --shimeji-seed=0" in done.stdout
    assert "PYTHONHASHSEED was random in this run" in done.stdout


def test_shimeji_sim_replay_refuses_what_it_cannot_replay(tmp_path, capsys):
    """A file that is not a failure file, or options besides it, are one-line errors."""
    from shimeji.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["sim", "--replay", str(bad)]) == 2
    assert "is not a shimeji failure file" in capsys.readouterr().err
    assert main(["sim", "examples/orders.py", "--replay", str(bad)]) == 2
    assert "give no MODULE, --call, --scenario, --faults or --replicas" in capsys.readouterr().err
    data = {
        "format": 1,
        "seed": 0,
        "schedule": [],
        "trace": [],
        "faults": "FaultPlan([])",
        "file": "nowhere.py",
        "function": "test_x",
        "test": "nowhere.py::test_x",
    }
    lost = tmp_path / "lost.json"
    lost.write_text(json.dumps(data))
    assert main(["sim", "--replay", str(lost)]) == 2
    assert "cannot find nowhere.py (the test nowhere.py::test_x)" in capsys.readouterr().err


def test_the_explore_options_override_every_marker(pytester: pytest.Pytester):
    """--shimeji-explore-runs and --shimeji-explore-processes apply to every exploring
    test; two processes find and save the same failure as one."""
    pytester.makepyfile(test_payments=PAYMENTS)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--shimeji-explore-runs=7", "--shimeji-explore-processes=2"
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*exploration: run * of 7 failed*",
            "*shrunk in * runs to: seed 0, fault plan FaultPlan([[]Duplicate()[]]), schedule []*",
            "test_payments.py::test_passes: 7 runs in *runs/s, 2 processes), no failure",
        ]
    )
    assert (pytester.path / FILE).is_file()
    result = pytester.runpytest("-p", "no:cacheprovider", "--shimeji-explore-runs=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
