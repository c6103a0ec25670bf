"""Project rules checked by tools: core/ never imports Qt, and the code is lint-clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.paths import REPO_ROOT

BIN = Path(sys.executable).parent


def test_core_never_imports_qt() -> None:
    proc = subprocess.run([str(BIN / "lint-imports")], cwd=REPO_ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO_ROOT), "PATH": str(BIN)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout or "0 broken" in proc.stdout


def test_ruff_clean() -> None:
    proc = subprocess.run([str(BIN / "ruff"), "check", "core", "app", "tests", "bench"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
