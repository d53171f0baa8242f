"""``shimeji sim``: running a module on the simulator from the command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shimeji.cli import main
from shimeji.cli.loading import parse_call
from shimeji.cli.sim import Progress

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["sim", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_an_example_alone_prints_its_timeline(capsys):
    """`shimeji sim examples/orders.py` prints the order-processing timeline, exit 0."""
    status, out, err = run("examples/orders.py", capsys=capsys)
    assert (status, err) == (0, "")
    assert out == (GOLDEN / "orders.txt").read_text()
    for step in (
        "process_order_parallel",
        "payment_service-1",
        "inventory_service-1",
        "email_service-1",
    ):
        assert step in out


def test_the_command_is_installed_and_exits_0():
    """The console entry point runs as a process."""
    done = subprocess.run(
        [sys.executable, "-m", "shimeji", "sim", "examples/calculator.py", "--format", "jsonl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: no progress bar, and no service logs
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))


def test_a_dotted_module_name_works_too(capsys):
    """MODULE may be a module importable from the current directory."""
    status, out, _ = run("examples.orders", capsys=capsys)
    assert status == 0 and out == (GOLDEN / "orders.txt").read_text()


@pytest.mark.parametrize("format", ["text", "mermaid", "jsonl", "perfetto", "html"])
def test_every_format_can_be_written_to_a_file(format, tmp_path, capsys):
    """--out writes the view and says so on stdout."""
    target = tmp_path / f"trace.{format}"
    status, out, _ = run(
        "examples/user_score.py", "--format", format, "--out", str(target), capsys=capsys
    )
    assert status == 0
    events = len((GOLDEN / "user_score.txt").read_text().splitlines()) - 1
    assert out == f"wrote the {format} view of {events} events to {target}\n"
    text = target.read_text()
    assert {
        "text": "    time  replica",
        "mermaid": "sequenceDiagram\n",
        "jsonl": '{"seq": 0,',
        "perfetto": '{"displayTimeUnit"',
        "html": "<!DOCTYPE html>",
    }[format] in text[:40]


def test_a_single_call_uses_every_service_of_the_module(capsys):
    """--call adds the module's services and reports what the call returned."""
    status, out, err = run(
        "examples/user_score.py",
        "--call",
        "user_service.calculate_user_score('u9', 2, base_score=None) ",
        capsys=capsys,
    )
    assert status == 0
    assert "IncorrectSignature" in err
    status, out, err = run(
        "examples/user_score.py",
        "--call",
        "user_service.calculate_user_score('u9', 2, multiplier=-4)",
        capsys=capsys,
    )
    assert status == 0
    assert err == (
        "user_service.calculate_user_score('u9', 2, multiplier=-4) returned "
        "{'user_id': 'u9', 'score': -8}\n"
    )
    assert "calculator-1    replica_start" in out and "user_service-1  replica_start" in out


def test_a_failing_call_is_an_outcome_not_an_error(capsys):
    """A call that raises remotely is shown (exit 0): it is what the user asked to see."""
    status, out, err = run(
        "examples/calculator.py",
        "--call",
        "calculator.divide(1, 0)",
        "--format",
        "mermaid",
        capsys=capsys,
    )
    assert status == 0
    assert err == "calculator.divide(1, 0) raised RemoteError: ValueError Division by zero\n"
    assert "P1-->>P0: ValueError: Division by zero" in out


def test_replicas_override_what_the_scenario_asks(capsys):
    """--replicas calculator=4 gives the scenario four calculators instead of two."""
    status, out, _ = run("examples/user_score.py", "--replicas", "calculator=4", capsys=capsys)
    assert status == 0
    assert "calculator-4    replica_start" in out
    assert "calculator-5" not in out


def test_seed_and_raw_ids(capsys):
    """--ids raw shows the UUIDs drawn from --seed; two seeds give two sets of ids."""
    _, seed_0, _ = run("examples/calculator.py", "--ids", "raw", capsys=capsys)
    _, seed_1, _ = run("examples/calculator.py", "--ids", "raw", "--seed", "1", capsys=capsys)
    _, again_1, _ = run("examples/calculator.py", "--ids", "raw", "--seed", "1", capsys=capsys)
    assert seed_0 != seed_1 and seed_1 == again_1
    assert "standalone_rpc_proxy.call.1 " not in seed_0


def test_a_fault_plan_as_python_or_as_a_file(tmp_path, capsys):
    """--faults takes the Python a plan prints, inline or in a file."""
    plan = 'FaultPlan([CrashDuring(service="calculator", method="multiply")])'
    status, inline, _ = run("examples/user_score.py", "--faults", plan, capsys=capsys)
    assert status == 0
    assert "fault_crash" in inline and "(redelivered)" in inline
    assert inline == (GOLDEN / "crash_redelivery.txt").read_text()
    path = tmp_path / "plan.py"
    path.write_text(plan + "\n")
    status, from_file, _ = run("examples/user_score.py", "--faults", str(path), capsys=capsys)
    assert (status, from_file) == (0, inline)


def write(tmp_path: Path, name: str, code: str) -> str:
    path = tmp_path / name
    path.write_text(code)
    return str(path)


SERVICE = textwrap.dedent(
    """
    from shimeji.rpc import rpc

    class Echo:
        name = "echo"

        @rpc
        def say(self, text):
            return text
    """
)
RAISES = SERVICE + "\ndef scenario(cluster):\n    cluster.add_service(Echo)\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["examples/nope.py"], "no such file: examples/nope.py"),
        (["nope.module"], "no module named 'nope.module'; give a file path"),
        (["examples/config.yaml"], "examples/config.yaml is not a Python file"),
        (["no/such/dir/"], "no such file: no/such/dir/"),
        (
            ["examples/calculator.py", "--scenario", "other"],
            "examples/calculator.py defines no function 'other'",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.divide(1, x)"],
            "invalid --call 'calculator.divide(1, x)': argument 2 'x' is not a literal",
        ),
        (
            ["examples/calculator.py", "--call", "calculator"],
            "invalid --call 'calculator': expected service.method(arguments)",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(1,"],
            "invalid --call 'calculator.add(1,': not a Python call expression",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(*x)"],
            "invalid --call 'calculator.add(*x)': *x is not allowed",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(**x)"],
            "invalid --call 'calculator.add(**x)': **x is not allowed",
        ),
        (
            ["examples/calculator.py", "--call", "f(1).add(2)"],
            "invalid --call 'f(1).add(2)': 'f(1)' is not a service name",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(__import__('os'))"],
            "argument 1 \"__import__('os')\" is not a literal",
        ),
        (
            ["examples/calculator.py", "--replicas", "calculator"],
            "invalid --replicas 'calculator': expected SERVICE=N",
        ),
        (
            ["examples/calculator.py", "--replicas", "calculator=0"],
            "invalid --replicas 'calculator=0': the number of replicas must be a whole number >= 1",
        ),
        (["examples/calculator.py", "--replicas", "a b=2"], "invalid --replicas 'a b=2': service"),
        (
            ["examples/calculator.py", "--replicas", "x=1", "--replicas", "x=2"],
            "--replicas names 'x' twice",
        ),
        (
            ["examples/calculator.py", "--call", "calculator.add(1, 2)", "--replicas", "calc=2"],
            "--replicas names 'calc', which examples/calculator.py does not define; its "
            "services: calculator",
        ),
        (
            ["examples/calculator.py", "--replicas", "ghost=2"],
            "--replicas names 'ghost', which the scenario never added; it added: calculator",
        ),
        (
            ["examples/calculator.py", "--faults", "Explode()"],
            "invalid fault plan (--faults): fault plan may only call",
        ),
        (
            ["examples/calculator.py", "--faults", "missing_plan.py"],
            "no such fault plan file: missing_plan.py",
        ),
        (
            ["examples/calculator.py", "--config", "missing.yaml"],
            "no such configuration file: missing.yaml",
        ),
        (
            ["examples/calculator.py", "--out", "no/such/dir/trace.txt"],
            "cannot write no/such/dir/trace.txt: no directory no/such/dir",
        ),
        (["examples/calculator.py", "--out", "examples"], "cannot write examples: it is a"),
        (["examples/calculator.py", "--faults", "examples"], "--faults examples is a directory"),
        (["examples/calculator.py", "--config", "examples"], "configuration examples is a dir"),
        (
            [
                "examples/calculator.py",
                "--call",
                "calculator.add(1, 2)",
                "--faults",
                "Crash(replica='calculator')",
            ],
            "the call calculator.add(1, 2) raised ConfigurationError: no replica named",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv, message, capsys):
    """Each mistake is one precise line on stderr, exit status 2, no traceback."""
    status, _, err = run(*argv, capsys=capsys)
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("shimeji sim: error: ")
    assert message in err


@pytest.mark.parametrize(
    ("code", "argv", "message"),
    [
        (
            "import not_a_module_anywhere\n",
            [],
            "importing {path} failed: ModuleNotFoundError: No module named 'not_a_module_anywhere'",
        ),
        ("def broken(:\n", [], "{path} has a syntax error at {path}:1"),
        (
            "raise RuntimeError('boom at import')\n",
            [],
            "importing {path} failed: RuntimeError: boom at import (at {path}:1)",
        ),
        ("X = 1\n", [], "no services found in {path} and no scenario() function"),
        ("X = 1\n", ["--call", "echo.say('hi')"], "no services found in {path}"),
        (
            SERVICE,
            [],
            "{path} has no scenario() function; add `def scenario(cluster): ...` or "
            "make one call with --call, e.g. --call 'echo.say(...)'",
        ),
        (
            SERVICE + "\ndef scenario(cluster):\n    pass\n",
            [],
            "no services: the scenario of {path} added none",
        ),
        (SERVICE + "\nscenario = 3\n", [], "{path}: scenario is not a function"),
        (
            RAISES + "    raise ValueError('the scenario\\nfails')\n",
            [],
            "scenario scenario() raised ValueError: the scenario fails (at {path}:13)",
        ),
        (
            RAISES + "    cluster.rpc.echo.say(1, 2)\n",
            [],
            "scenario scenario() raised IncorrectSignature: say(text): too many positional "
            "arguments (at {path}:13)",
        ),
    ],
)
def test_problems_in_the_module_are_one_line(code, argv, message, tmp_path, capsys):
    """Import errors, missing services, scenarios that raise: one line, status 2."""
    path = write(tmp_path, "mod_under_test.py", code)
    sys.modules.pop("mod_under_test", None)
    status, _, err = run(path, *argv, capsys=capsys)
    sys.modules.pop("mod_under_test", None)
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message.format(path=path) in err


def test_a_scenario_that_raises_still_shows_its_trace(tmp_path, capsys):
    """The trace up to the failure is printed before the error line."""
    code = RAISES + '    cluster.rpc.echo.say("before")\n    raise KeyError("after")\n'
    path = write(tmp_path, "mod_raises.py", code)
    sys.modules.pop("mod_raises", None)
    status, out, err = run(path, capsys=capsys)
    assert status == 2
    assert 'say("before")' in out
    assert "raised KeyError: 'after'" in err


def test_parse_call_reads_literals_only():
    """Arguments are literals, read without evaluating anything."""
    call = parse_call("a.b.method(1, -2.5, 'x', [1, (2, 3)], {'k': None}, flag=True)")
    assert (call.service, call.method) == ("a.b", "method")
    assert call.args == (1, -2.5, "x", [1, (2, 3)], {"k": None})
    assert call.kwargs == {"flag": True}


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_counts_calls_and_clears_itself():
    """The bar shows answered/made calls and events, and erases itself at the end."""
    from shimeji.core.events import Event
    from shimeji.core.transport import Message

    stream = FakeTerminal()
    progress = Progress(stream, delay=0.0, interval=0.0)
    request = Message(b"{}", "a.b", reply_to="r", correlation_id="c")
    reply = Message(b"{}", "r", correlation_id="c")
    for _ in range(128):
        progress.emit(Event(kind="publish", replica="client", message=request))
        progress.emit(Event(kind="deliver", replica="client", message=reply))
    assert progress.line().startswith("[########################] 128/128 calls answered")
    assert "256 events" in stream.getvalue()
    progress.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys):
    """Captured stderr is not a terminal: nothing but errors goes there."""
    status, _, err = run("examples/orders.py", capsys=capsys)
    assert status == 0 and err == ""
