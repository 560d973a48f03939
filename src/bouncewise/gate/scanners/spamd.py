"""SpamAssassin spamd client: send one message over the SPAMC protocol and read the verdict.

The client sends "SYMBOLS SPAMC/1.5", which costs spamd the same scan as CHECK and also
returns the names of the rules that matched. The reply header "Spam: True ; 15.2 / 5.0"
gives the verdict, the score and the threshold.

Settings of a `[[scanner]]` table with `type = "spamd"`:

    address   "host:port" of spamd, default "127.0.0.1:783"
    timeout   seconds the gate allows for one scan, default 30
    max_size  largest message in bytes that is sent to spamd, default 512000
    user      user name sent to spamd, which selects that user's preferences (optional)
    name      name of this scanner in results and logs, default "spamd"

Like spamc (its -s option, default 500 KiB), the client does not send a message larger
than `max_size` bytes. It passes such a message as clean, and the result carries the finding
"not scanned: over max_size" so that the gate's log shows why.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from bouncewise.gate.scanners import (CLEAN, DEFAULT_TIMEOUT, SPAM, ScanError, ScanResult,
                                      check_settings, parse_address)
from bouncewise.gate.scanners.net import connect, send_and_read

__all__ = ["SpamdScanner", "from_settings", "parse_reply"]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:783"
DEFAULT_PORT = 783
# spamc 4.0's default for -s: spamc sends a message of 512000 bytes and passes one of
# 512001 bytes unscanned.
DEFAULT_MAX_SIZE = 512_000
# A SYMBOLS reply is a status line, two headers and one line of rule names, a few KiB at most.
MAX_REPLY_BYTES = 65_536
PROTOCOL = "SPAMC/1.5"
NOT_SCANNED_OVER_MAX_SIZE = "not scanned: over max_size"

SETTING_KEYS = frozenset({"type", "name", "address", "timeout", "max_size", "user"})

# "True ; 15.2 / 5.0": True or False in any case, as spamc 4.0 compares it, then the score
# and the threshold.
SPAM_HEADER = re.compile(r"(True|False)\s*;\s*(-?[0-9.]+)\s*/\s*(-?[0-9.]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SpamdScanner:
    """A client of one spamd server."""

    host: str
    port: int
    timeout: float = DEFAULT_TIMEOUT
    max_size: int = DEFAULT_MAX_SIZE
    user: str | None = None
    name: str = "spamd"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def scan(self, message: bytes) -> ScanResult:
        """Send `message` to spamd and return its verdict. Raise ScanError when spamd fails."""
        if len(message) > self.max_size:
            log.info("%s: message of %d bytes not scanned: over max_size %d",
                     self.name, len(message), self.max_size)
            return ScanResult(CLEAN, self.name, findings=(NOT_SCANNED_OVER_MAX_SIZE,))

        reply = await self._exchange(self._request(message))
        return parse_reply(reply, self.name, f"spamd at {self.address}")

    def _request(self, message: bytes) -> bytes:
        headers = [f"SYMBOLS {PROTOCOL}", f"Content-length: {len(message)}"]
        if self.user is not None:
            headers.append(f"User: {self.user}")
        return ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + message

    async def _exchange(self, request: bytes) -> bytes:
        where = f"spamd at {self.address}"
        loop = asyncio.get_running_loop()
        connection = await connect(loop, self.host, self.port, where)

        # This uses a plain non-blocking socket, not asyncio streams, because spamd may send
        # an error line and close the connection before it has read the whole message. A
        # stream transport whose write fails then discards that line unread. The socket is
        # closed on every exit, a cancelled scan (the gate's timeout) included.
        with connection:
            reply, transfer_error = await send_and_read(loop, connection, [request],
                                                        MAX_REPLY_BYTES, where)

        if transfer_error is not None and not has_error_status(reply):
            # Unless spamd sent an error reply, a broken connection is an error, because spamd
            # may not have had the whole message, or the reply may be cut short.
            raise ScanError(f"{where}: connection lost: {transfer_error}") from transfer_error
        return reply


def has_error_status(reply: bytes) -> bool:
    """Return whether `reply` starts with a spamd status line whose code is not 0 (EX_OK)."""
    status = reply.partition(b"\r\n")[0].split()
    return len(status) >= 2 and status[0].startswith(b"SPAMD/") and status[1] != b"0"


def parse_reply(reply: bytes, scanner: str, where: str) -> ScanResult:
    """Read a spamd reply to CHECK or SYMBOLS into a ScanResult.

    Raises ScanError for an error status and for a reply that is not spamd's.
    """
    status_line, _, rest = reply.partition(b"\r\n")
    status = status_line.decode("latin-1").split(None, 2)
    if len(status) < 2 or not status[0].startswith("SPAMD/") or not status[1].isdigit():
        received = status_line[:80].decode("latin-1") or "nothing"
        raise ScanError(f"{where}: invalid reply: expected 'SPAMD/<version> <code>', "
                        f"got {received!r}")

    code = int(status[1])
    if code != 0:
        cause = status[2] if len(status) > 2 else "no message"
        raise ScanError(f"{where}: spamd returned error {code}: {cause}")

    head, separator, body = rest.partition(b"\r\n\r\n")
    if not separator:
        raise ScanError(f"{where}: invalid reply: headers not terminated by an empty line")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()

    spam_header = headers.get("spam")
    if spam_header is None:
        raise ScanError(f"{where}: invalid reply: no Spam header")
    match = SPAM_HEADER.fullmatch(spam_header)
    if match is None:
        raise ScanError(f"{where}: invalid Spam header {spam_header!r}")
    try:
        score, threshold = float(match[2]), float(match[3])
    except ValueError:
        raise ScanError(f"{where}: invalid Spam header {spam_header!r}") from None

    length = headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) != len(body)):
        raise ScanError(f"{where}: reply body is {len(body)} bytes, Content-length is {length!r}")
    rules = tuple(name.strip() for name in body.decode("latin-1").split(",") if name.strip())

    verdict = SPAM if match[1].lower() == "true" else CLEAN
    return ScanResult(verdict, scanner, score=score, threshold=threshold, findings=rules)


def from_settings(settings: dict[str, Any]) -> SpamdScanner:
    """Build a SpamdScanner from a `[[scanner]]` table. Raise ValueError for a bad setting."""
    address = check_settings(settings, SETTING_KEYS, "spamd") or DEFAULT_ADDRESS
    host, port = parse_address(address, DEFAULT_PORT)
    if not host:
        raise ValueError(f"spamd scanner: address {address!r} has no host")

    return SpamdScanner(
        host=host,
        port=port,
        timeout=positive_number(settings, "timeout", DEFAULT_TIMEOUT),
        max_size=positive_integer(settings, "max_size", DEFAULT_MAX_SIZE),
        user=header_value(settings, "user"),
        name=header_value(settings, "name") or "spamd",
    )


def positive_number(settings: dict[str, Any], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"spamd scanner: {key} must be a positive number of seconds, got {value!r}")
    return float(value)


def positive_integer(settings: dict[str, Any], key: str, default: int) -> int:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"spamd scanner: {key} must be a positive whole number, got {value!r}")
    return value


def header_value(settings: dict[str, Any], key: str) -> str | None:
    """Return an optional string setting that goes into a protocol header line."""
    value = settings.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError(f"spamd scanner: {key} must be a non-empty string of printable "
                         f"characters, got {value!r}")
    return value
