"""The README's quickstart works as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def blocks() -> dict[str, str]:
    """README code blocks whose first line names a file (``# name.py``)."""
    text = (ROOT / "README.md").read_text()
    found = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL):
        first = block.splitlines()[0]
        if first.startswith("# ") and first.endswith(".py"):
            found[first[2:]] = block
    return found


def pytest_in(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``pytest -q -p no:cacheprovider ARGS`` run in ``folder``, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_quickstart_runs_as_written(tmp_path):
    """services.py and test_services.py from the README pass, and print the trace shown."""
    files = blocks()
    assert set(files) >= {"services.py", "test_services.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    done = pytest_in(tmp_path, "-s", "test_services.py", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"```\n(    time  replica.*?)\n\.\.\.\n```", readme, re.DOTALL).group(1)
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    for line in shown.splitlines():
        assert line.rstrip() in printed


def test_failure_path_example_fails_shrinks_and_is_fixed(tmp_path):
    """The payments property fails as shown, shrunk to one duplicate; the fix passes."""
    code = blocks()["test_payments.py"]
    (tmp_path / "test_payments.py").write_text(code)
    done = pytest_in(tmp_path, "--hypothesis-seed=0", "test_payments.py")
    assert done.returncode == 1, done.stdout + done.stderr
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"```\n(E       fault plan:.*?)```", readme, re.DOTALL).group(1)
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    for line in shown.splitlines():
        if line != "...":
            assert line.rstrip() in printed, line
    fixed = (
        code.replace(
            "        CHARGES.append(order_id)  # not idempotent: a second delivery charges again\n",
            "        if order_id not in CHARGED:\n"
            "            CHARGED[order_id] = amount\n"
            "            CHARGES.append(order_id)\n",
        )
        .replace("CHARGES = []\n", "CHARGES = []\nCHARGED = {}\n")
        .replace("    CHARGES.clear()\n", "    CHARGES.clear()\n    CHARGED.clear()\n")
    )
    assert fixed != code
    (tmp_path / "test_payments.py").write_text(fixed)
    done = pytest_in(tmp_path, "test_payments.py")
    assert done.returncode == 0, done.stdout[-3000:]


def test_shimeji_sim_commands_run(tmp_path):
    """Every `shimeji sim` command shown in the README runs and exits 0 (1 where it
    says the call raises)."""
    import shlex

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Seeing what happened.*?```bash\n(.*?)```", readme, re.DOTALL).group(1)
    commands = [
        (line.split("#")[0].strip(), 1 if "exit status 1" in line else 0)
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip().startswith("shimeji sim")
    ]
    assert len(commands) == 5
    for command, status in commands:
        argv = shlex.split(command.replace("--out orders.html", f"--out {tmp_path}/o.html"))
        done = subprocess.run(
            [sys.executable, "-m", "shimeji", *argv[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == status, (command, done.stderr)
        assert done.stdout or (tmp_path / "o.html").exists()


def test_exploration_example_finds_saves_and_replays(tmp_path):
    """The exploring test fails as shown (the hash seed aside), and both replay commands
    shown run its failure file again with the recorded trace."""
    import shlex

    files = blocks()
    for name in ("test_payments.py", "test_payments_explored.py"):
        (tmp_path / name).write_text(files[name])
    done = pytest_in(tmp_path, "test_payments_explored.py")
    assert done.returncode == 1, done.stdout + done.stderr
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Exploring") :]
    shown = re.search(r"```\n(-+ shimeji -+\n.*?)```", section, re.DOTALL).group(1)

    def unseeded(text: str) -> str:
        return re.sub(r"PYTHONHASHSEED=\d+", "PYTHONHASHSEED=N", text)

    printed = [unseeded(line.rstrip()) for line in done.stdout.splitlines()]
    for line in shown.splitlines():
        if line != "...":
            assert unseeded(line.rstrip()) in printed, line
    assert "exploration: run 7 of 2000 failed (AssertionError" in done.stdout  # the eighth
    hash_seed = re.search(r"replay: PYTHONHASHSEED=(\d+)", done.stdout).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    commands = commands.replace("\\\n", " ")
    for command in commands.splitlines():
        argv = shlex.split(unseeded(command))
        assert argv[0] in ("PYTHONHASHSEED=N", "shimeji"), command
        if argv[0] == "PYTHONHASHSEED=N":
            argv = [sys.executable, "-m", *argv[1:]]
        else:
            argv = [sys.executable, "-m", *argv]
        replayed = subprocess.run(
            argv,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert replayed.returncode == 1, replayed.stdout + replayed.stderr
        assert "the trace is the recorded one, event for event" in (
            replayed.stdout + replayed.stderr
        )
