"""The built-in scanner: test patterns, and a trusted upstream filter's verdict header.

It needs no service, so the gate works on a fresh machine. It finds the two industry test
patterns, which are not real spam or viruses but let anyone check that refusals work:

- GTUBE, the Generic Test for Unsolicited Bulk Email, anywhere in the message: spam;
- the EICAR anti-virus test file, in the raw message or in any decoded MIME part: virus.

With `header` set it also reads a verdict that an earlier filter wrote into the message, such
as "X-Spam-Flag: YES". Use that only where every message has passed that filter, because a
sender can write any header field.
"""

from __future__ import annotations

from dataclasses import dataclass

from bouncewise.gate.scanners import CLEAN, DEFAULT_TIMEOUT, SPAM, VIRUS, ScanResult
from bouncewise.mail.message import Message

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

# The EICAR test string, kept in two pieces so that a virus scanner does not flag this file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR" + b"-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

# The name ClamAV gives the EICAR test file, so that logs read alike whichever scanner found it.
EICAR_NAME = "Eicar-Test-Signature"

_SETTINGS = ("type", "name", "timeout", "patterns", "header", "spam_values")


@dataclass(frozen=True, slots=True)
class BuiltinScanner:
    """Finds GTUBE and EICAR, and reads a trusted verdict header."""

    name: str = "builtin"
    timeout: float = DEFAULT_TIMEOUT
    patterns: bool = True
    header: str = ""
    spam_values: tuple[str, ...] = ("yes",)

    async def scan(self, message: bytes) -> ScanResult:
        if self.patterns:
            if EICAR in message or any(EICAR in part for part in _decoded_parts(message)):
                return ScanResult(VIRUS, self.name, findings=(EICAR_NAME,))
            if GTUBE in message:
                return ScanResult(SPAM, self.name, findings=("GTUBE",))

        if self.header and self._header_marks_spam(message):
            return ScanResult(SPAM, self.name, findings=(f"{self.header} header",))
        return ScanResult(CLEAN, self.name)

    def _header_marks_spam(self, message: bytes) -> bool:
        values = Message(message).headers(self.header.lower())
        return any(value.split(None, 1)[0].lower() in self.spam_values
                   for value in values if value.strip())


def _decoded_parts(message: bytes):
    """Yield the decoded content of each leaf part that has a transfer encoding."""
    for part in Message(message).walk():
        if part.content_type.startswith("multipart/"):
            continue
        if part.header("content-transfer-encoding").strip().lower() in ("base64",
                                                                       "quoted-printable"):
            yield part.payload()


def from_settings(settings: dict) -> BuiltinScanner:
    """Build the scanner from its `[[scanner]]` table."""
    unknown = sorted(set(settings) - set(_SETTINGS))
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r} for the builtin scanner; known: "
                         f"{', '.join(_SETTINGS)}")
    spam_values = settings.get("spam_values", ["yes"])
    if not isinstance(spam_values, list) or not all(isinstance(v, str) for v in spam_values):
        raise ValueError("spam_values must be a list of strings")
    return BuiltinScanner(
        name=str(settings.get("name", "builtin")),
        timeout=float(settings.get("timeout", DEFAULT_TIMEOUT)),
        patterns=bool(settings.get("patterns", True)),
        header=str(settings.get("header", "")),
        spam_values=tuple(value.lower() for value in spam_values),
    )
