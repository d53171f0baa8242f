"""Finding the external tools some view tests use (installed by .ci/views.sh)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.views.browser import find_chromium

__all__ = ["find_mmdc", "puppeteer_config", "require_chromium", "require_mmdc"]

SETUP = "run `bash .ci/views.sh` to install it"


def _tools_dir() -> Path:
    return Path(os.environ.get("SHIMEJI_TOOLS") or Path.home() / ".cache" / "shimeji-tools")


def find_mmdc() -> str | None:
    """The mermaid CLI: $SHIMEJI_MMDC, the copy .ci/views.sh installs, or mmdc on PATH."""
    explicit = os.environ.get("SHIMEJI_MMDC")
    if explicit:
        return explicit
    installed = _tools_dir() / "mermaid-cli" / "node_modules" / ".bin" / "mmdc"
    if os.access(installed, os.X_OK):
        return str(installed)
    return shutil.which("mmdc")


def require_chromium() -> str:
    """Chromium's path; the test is skipped without it, except on CI where it must be."""
    found = find_chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"chromium is missing on CI; {SETUP}")
        pytest.skip(f"chromium is not installed; {SETUP}")
    return found


def require_mmdc() -> str:
    """The mermaid CLI. Skipped only when npm is absent; with npm, a missing mmdc fails."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: cannot check that mermaid diagrams render")
    found = find_mmdc()
    if found is None:
        pytest.fail(f"the mermaid CLI (mmdc) is missing; {SETUP}")
    return found


def puppeteer_config(directory: Path, chromium: str) -> Path:
    """A puppeteer configuration running Debian's Chromium headless, sandbox off."""
    path = directory / "puppeteer.json"
    path.write_text(
        json.dumps(
            {
                "executablePath": chromium,
                "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            }
        )
    )
    return path
