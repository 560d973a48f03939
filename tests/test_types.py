"""The package's type hints, checked with mypy where it is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "bouncewise"


def test_mypy_finds_no_errors():
    pytest.importorskip("mypy", reason="mypy is not installed; pip install -e '.[test]' adds it")
    finished = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-error-summary", str(SOURCE)],
        capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr
