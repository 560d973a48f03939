"""Run Sisimai 4 (Debian's libsisimai-perl) on one bounce and return its rows per recipient.

The Perl program is SISIMAI_PROGRAM from bench/accuracy.py, loaded from that file so both read
bounces the same way. It takes NUL-terminated paths on standard input and prints one JSON object.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
ACCURACY_SCRIPT = ROOT / "bench" / "accuracy.py"
INSTALL_HINT = "Sisimai not installed: apt-get install libsisimai-perl"
# Only stops a hung perl process: Sisimai reads one bounce in well under a second.
SISIMAI_TIMEOUT_SECONDS = 60.0
# Fields of each returned row, with Sisimai's names.
ROW_FIELDS = ("recipient", "reason", "deliverystatus", "replycode", "diagnosticcode")


class SisimaiError(RuntimeError):
    """Raised when perl or Sisimai fails on a bounce or prints unreadable output."""


def sisimai_missing_reason() -> str | None:
    """Return a pytest skip reason when `perl -MSisimai` fails, or None when Sisimai loads."""
    try:
        completed = subprocess.run(["perl", "-MSisimai", "-e", "1"], capture_output=True,
                                   timeout=SISIMAI_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return INSTALL_HINT
    return None if completed.returncode == 0 else INSTALL_HINT


def _load_accuracy_script() -> ModuleType:
    # accuracy.py defines dataclasses, which look up their module in sys.modules while the
    # file is executed, so it is registered there first.
    name = "bouncewise_bench_accuracy"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ACCURACY_SCRIPT)
    if spec is None or spec.loader is None:
        raise SisimaiError(f"{ACCURACY_SCRIPT}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def classify_file(path: Path) -> list[dict[str, str]]:
    """Run Sisimai on one bounce file and return one dict per recipient, keys ROW_FIELDS.

    The file contains one message or an mbox. Raises SisimaiError naming the file when perl is
    missing, Sisimai is missing or raises, perl fails, or its output is not the expected JSON.
    """
    accuracy = _load_accuracy_script()
    try:
        completed = subprocess.run(["perl", "-e", accuracy.SISIMAI_PROGRAM],
                                   input=bytes(path) + b"\0", capture_output=True,
                                   timeout=SISIMAI_TIMEOUT_SECONDS, check=False)
    except FileNotFoundError:
        raise SisimaiError(f"{path}: perl not found: apt-get install perl") from None
    except subprocess.TimeoutExpired:
        raise SisimaiError(f"{path}: Sisimai timed out after {SISIMAI_TIMEOUT_SECONDS} s") from None

    if completed.returncode == accuracy.SISIMAI_MISSING_EXIT:
        raise SisimaiError(f"{path}: {INSTALL_HINT}")
    if completed.returncode != 0:
        message = " ".join(completed.stderr.decode(errors="replace").split())
        raise SisimaiError(f"{path}: perl failed with exit status {completed.returncode}: "
                           f"{message}")

    try:
        result = json.loads(completed.stdout)["files"][0]
        rows = [{name: str(row[name]) for name in ROW_FIELDS} for row in result["rows"]]
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise SisimaiError(f"{path}: Sisimai printed unexpected output: {error}") from None
    if result.get("error"):
        raise SisimaiError(f"{path}: Sisimai failed: {' '.join(result['error'].split())}")
    return rows


def classify_bytes(data: bytes) -> list[dict[str, str]]:
    """Write `data` to a temporary file and run classify_file on it."""
    with tempfile.NamedTemporaryFile(prefix="bounce-", suffix=".eml") as bounce:
        bounce.write(data)
        bounce.flush()
        return classify_file(Path(bounce.name))
