"""docs/tutorial.md shows what the commands really print."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from shimeji.cli import main

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text()
PAIRS = re.findall(r"```\n(shimeji sim [^\n]+)\n```\n\n```mermaid\n(.*?)```", TUTORIAL, re.DOTALL)


def test_the_tutorial_has_its_diagrams():
    """Every step with a diagram is checked below."""
    assert len(PAIRS) == 5


@pytest.mark.parametrize(("command", "diagram"), PAIRS, ids=[p[0][12:40] for p in PAIRS])
def test_each_diagram_is_what_its_command_prints(command, diagram, capsys, monkeypatch):
    """Run the command as written; its output is the diagram shown."""
    monkeypatch.chdir(ROOT)
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out == diagram


def test_the_first_timeline_is_real(capsys, monkeypatch):
    """The timeline of the first step is what the command prints, all of it."""
    monkeypatch.chdir(ROOT)
    shown = re.search(r"```\n(    time  replica.*?\n)```", TUTORIAL, re.DOTALL).group(1)
    assert main(["sim", "examples/calculator.py", "--call", "calculator.multiply(6, 7)"]) == 0
    out, err = capsys.readouterr()
    assert out == shown
    assert err == "calculator.multiply(6, 7) returned 42\n"


def test_what_the_tutorial_says_of_the_flags(capsys, monkeypatch):
    """--all shows the routine events it says are left out; --wide the seven columns
    of print(cluster.trace), with nothing cut; not a terminal: 100 columns."""
    from shimeji.sim import SimCluster
    from shimeji.views.text import HEADER

    monkeypatch.chdir(ROOT)
    main(["sim", "examples/orders.py", "--all", "--wide"])
    out = capsys.readouterr().out
    for kind in ("replica_start", "replica_stop", "queue_deleted"):
        assert f"  {kind}  " in out
    assert out.splitlines()[0].split() == list(HEADER)
    with SimCluster() as cluster:
        pass
    assert str(cluster.trace).splitlines()[0].split() == list(HEADER)
    main(["sim", "examples/orders.py"])
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) == 100


def test_the_gateway_chapter(capsys, monkeypatch):
    """Chapter 7: a body that is not JSON is a 400 and exit 1; a replica dying with
    the request is a 502 from the front, and the request is not sent again."""
    monkeypatch.chdir(ROOT)
    assert main(["sim", "examples/gateway.py", "--call", "POST /orders not json"]) == 1
    err = capsys.readouterr().err
    assert err == "POST /orders answered 400: Error: BadRequest: the body must be a JSON order\n"
    plan = 'CrashDuring(service="gateway", method="get_order")'
    assert main(["sim", "examples/gateway.py", "--faults", plan]) == 0
    out = capsys.readouterr().out
    assert "gateway-1 died handling the request" in " ".join(out.split())
    assert "502" in out
    assert out.count("GET /orders/1001  (gateway.get_order)") == 1
