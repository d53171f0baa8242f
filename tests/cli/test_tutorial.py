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
    assert len(PAIRS) == 4


@pytest.mark.parametrize(("command", "diagram"), PAIRS, ids=[p[0][12:40] for p in PAIRS])
def test_each_diagram_is_what_its_command_prints(command, diagram, capsys, monkeypatch):
    """Run the command as written; its output is the diagram shown."""
    monkeypatch.chdir(ROOT)
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out == diagram


def test_the_first_timeline_is_real(capsys, monkeypatch):
    """The timeline of the first step is what the command prints (up to the '...')."""
    monkeypatch.chdir(ROOT)
    shown = re.search(r"```\n(    time  replica.*?)\n\.\.\.\n", TUTORIAL, re.DOTALL).group(1)
    assert main(["sim", "examples/calculator.py", "--call", "calculator.multiply(6, 7)"]) == 0
    assert capsys.readouterr().out.startswith(shown + "\n")
