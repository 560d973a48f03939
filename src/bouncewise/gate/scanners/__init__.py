"""Content scanners of the gate: each reads one whole message and returns a verdict.

A scanner is built from one `[[scanner]]` table of the gate's configuration. The `type` key
picks the module from `SCANNER_TYPES`; the other keys are that scanner's settings. Every
scanner has a `timeout` in seconds, enforced by the gate around `scan()`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["CLEAN", "SPAM", "VIRUS", "ScanResult", "ScanError", "Scanner", "SCANNER_TYPES",
           "build_scanner", "check_settings", "parse_address"]

# Verdicts, in rising order of severity: when several scanners return one, the most severe wins.
CLEAN = "clean"
SPAM = "spam"
VIRUS = "virus"
SEVERITY = {CLEAN: 0, SPAM: 1, VIRUS: 2}

# The module that implements each scanner type, in src/bouncewise/gate/scanners/.
SCANNER_TYPES = {
    "builtin": "bouncewise.gate.scanners.builtin",
    "spamd": "bouncewise.gate.scanners.spamd",
    "rspamd": "bouncewise.gate.scanners.rspamd",
    "clamd": "bouncewise.gate.scanners.clamd",
}

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ScanResult:
    """A scanner's verdict on one message."""

    verdict: str
    scanner: str
    # The score and the threshold it was held against, where the scanner gives them.
    score: float | None = None
    threshold: float | None = None
    # What was found: the virus name, or the spam rules (symbols) that matched.
    findings: tuple[str, ...] = field(default_factory=tuple)


class ScanError(Exception):
    """A scanner returned no verdict: unreachable, refused the request, or sent garbage."""


class Scanner(Protocol):
    """Interface of a scanner, as the gate calls it."""

    name: str
    timeout: float

    async def scan(self, message: bytes) -> ScanResult:
        """Return the verdict on `message` (the raw bytes with CRLF line ends); raise
        ScanError when no verdict can be had."""
        ...


def build_scanner(settings: dict[str, Any]) -> Scanner:
    """Build a scanner from one `[[scanner]]` table; raise ValueError for a bad table."""
    kind = settings.get("type", "")
    if kind not in SCANNER_TYPES:
        raise ValueError(f"unknown scanner type {kind!r}: expected one of "
                         f"{', '.join(sorted(SCANNER_TYPES))}")
    module = importlib.import_module(SCANNER_TYPES[kind])
    return module.from_settings(settings)


def check_settings(settings: dict[str, Any], known: frozenset[str], scanner: str) -> str:
    """Raise ValueError for a key not in `known`; return the `address` setting, which must be
    a string if given ("" where it is absent)."""
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{scanner} scanner: unknown setting {', '.join(map(repr, unknown))}, "
                         f"expected some of {', '.join(sorted(known))}")
    address = settings.get("address", "")
    if not isinstance(address, str):
        raise ValueError(f"{scanner} scanner: address must be a string such as "
                         f"\"host:port\", got {address!r}")
    return address


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """Split "host:port", "[v6]:port" or "host" into a host and a port number.

    Raises ValueError for a port that is not a number from 1 to 65535.
    """
    host, port = text, str(default_port)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid port in address {text!r}")
    return host, int(port)
